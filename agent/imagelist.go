package agent

import (
	"maps"
	"slices"
	"time"

	"knode.dev/knode/gossip"
	"knode.dev/knode/registry"
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
	// Nodes hold the image at Digest: the node that imported it and
	// those whose containerd pulled it (their announced blobs include
	// its manifest); Older name it at an earlier import.
	Nodes []string `json:"nodes"`
	Older []string `json:"older,omitempty"`
}

// Images reports the cluster's images from the gossiped announcements of
// current members.
func (a *Agent) Images() ImagesReport {
	snap := a.state.Snapshot()
	p := imagePeers{a}
	byRef := map[string]*ImageHolders{}
	members := slices.DeleteFunc(slices.Sorted(maps.Keys(snap.Images)), func(n string) bool { return !p.member(n) })
	for _, name := range members {
		for _, r := range snap.Images[name].Refs {
			if byRef[r.Ref] != nil {
				continue
			}
			latest, ok := p.Latest(r.Ref)
			if !ok { // named by workers only: each for itself
				latest = registry.Image{Digest: fromRaw(r.Digest), Imported: r.Imported}
			}
			h := &ImageHolders{Ref: r.Ref, Digest: latest.Digest.String(), Imported: time.Unix(0, latest.Imported).UTC()}
			for _, n := range members {
				ann := snap.Images[n]
				switch {
				case gossip.BloomHas(ann.Blobs, raw(latest.Digest)):
					h.Nodes = append(h.Nodes, n)
				case slices.ContainsFunc(ann.Refs, func(o gossip.ImageRef) bool { return o.Ref == r.Ref }):
					h.Older = append(h.Older, n)
				}
			}
			byRef[r.Ref] = h
		}
	}
	rep := ImagesReport{Images: []ImageHolders{}}
	for _, ref := range slices.Sorted(maps.Keys(byRef)) {
		rep.Images = append(rep.Images, *byRef[ref])
	}
	rep.FetchedFromPeers, rep.ServedToPeers = a.ImageStats()
	return rep
}
