package agent

import (
	"maps"
	"slices"
	"time"
)

// ImagesReport is what `knode images list` shows: every image name some
// member announces, with the digest the cluster resolves it to and which
// nodes hold that digest, and this node's transfer counters.
type ImagesReport struct {
	Images []ImageHolders `json:"images"`
	// FetchedFromPeers and ServedToPeers count bytes since the agent
	// started, by peer.
	FetchedFromPeers map[string]int64 `json:"fetchedFromPeers,omitempty"`
	ServedToPeers    map[string]int64 `json:"servedToPeers,omitempty"`
}

// ImageHolders is one image name across the cluster.
type ImageHolders struct {
	Ref string `json:"ref"`
	// Digest is the latest import's manifest digest (what pulls get).
	Digest   string    `json:"digest"`
	Imported time.Time `json:"imported"`
	// Nodes hold the name at Digest; Older hold it at an earlier import.
	Nodes []string `json:"nodes"`
	Older []string `json:"older,omitempty"`
}

// Images reports the cluster's images from the gossiped announcements of
// current members.
func (a *Agent) Images() ImagesReport {
	snap := a.state.Snapshot()
	p := imagePeers{a}
	byRef := map[string]*ImageHolders{}
	for _, name := range slices.Sorted(maps.Keys(snap.Images)) {
		if !p.member(name) {
			continue
		}
		for _, r := range snap.Images[name].Refs {
			h := byRef[r.Ref]
			if h == nil {
				latest, _ := p.Latest(r.Ref)
				h = &ImageHolders{Ref: r.Ref, Digest: latest.Digest.String(), Imported: time.Unix(0, latest.Imported).UTC()}
				byRef[r.Ref] = h
			}
			if fromRaw(r.Digest).String() == h.Digest {
				h.Nodes = append(h.Nodes, name)
			} else {
				h.Older = append(h.Older, name)
			}
		}
	}
	rep := ImagesReport{Images: []ImageHolders{}}
	for _, ref := range slices.Sorted(maps.Keys(byRef)) {
		rep.Images = append(rep.Images, *byRef[ref])
	}
	rep.FetchedFromPeers, rep.ServedToPeers = a.ImageStats()
	return rep
}
