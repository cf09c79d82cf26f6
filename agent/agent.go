package agent

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"knode.dev/knode/apilb"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
	"knode.dev/knode/version"
)

// Options configure an Agent.
type Options struct {
	Dir datadir.Dir
	// Token is set when this node joins: it is admitted through Peers with
	// it and receives the cluster's gossip keys. A restarted node uses the
	// keys it saved.
	Token *pki.Token
	Node  config.Node
	// Peers to join through (host:port). Empty for the first node of a cluster.
	Peers []string
	// Rejoin: a failed join is not fatal (a restarted node whose peers are
	// down keeps running alone and retries).
	Rejoin    bool
	Timing    gossip.Timing
	Transport memberlist.Transport // nil: UDP/TCP on Node.Bind
	Logger    *slog.Logger
	// Serve the status API on the data directory's unix socket.
	Serve bool
	// Host, when set, lets the agent keep this host's pod network current.
	Host *HostOptions
	// Create is a new cluster (from Create); nil when joining or restarting.
	Create *Genesis
	// APIEndpoint, when valid, is where the agent serves the node-local
	// apiserver endpoint (hostprep.APIEndpoint on a configured node).
	APIEndpoint netip.AddrPort
	// Snapshots, when set, makes the agent save scheduled etcd snapshots
	// while this node is a master with a configured host.
	Snapshots *SnapshotPolicy
	// CertLifetime is the lifetime of the leaf certificates this node signs
	// (0: pki.LeafValidity, one year). Shorter only in tests and in the lab,
	// to watch renewals happen.
	CertLifetime time.Duration
	// Images, when set, runs the node's image store, its registry mirror
	// and its peer endpoint, and announces the images it holds.
	Images *ImagesOptions
	// Now is the clock of certificate renewal (nil: time.Now).
	Now func() time.Time
}

// Agent is knode's long-running brain on one node: it gossips, claims its
// place, decides when it is the allocator, hands secrets to masters, signs
// workers' certificates and keeps its host's pod network current.
type Agent struct {
	opts    Options
	log     *slog.Logger
	cluster config.Cluster
	state   *gossip.State
	g       *gossip.Node
	key     *ecdh.PrivateKey   // secrets are sealed to its public half
	sign    ed25519.PrivateKey // signs this node's records and letters
	api     *apiServer

	endpoint     *apilb.Balancer // nil without Options.APIEndpoint
	images       *images         // nil without Options.Images
	lastBackends []string        // the endpoint's backends; owned by the loop

	mu        sync.Mutex
	id        datadir.Identity
	secrets   *datadir.Secrets // nil on workers
	sentAt    map[string]time.Time
	certs     chan map[string][]byte // certificates a master sent
	refused   chan string            // why a master refused this node's claim
	claims    map[string]gossip.Claim
	heardAt   map[string]time.Time // when each held claim last arrived
	claimedAt time.Time
	refusedAt map[string]time.Time
	csrs      *csrLimiter // how often this master signs each node's requests

	idSave sync.Mutex // held while the identity is written (saveIdentity)
	// hostMu is held while the host is being changed (RestoreHost and the host
	// loop's keepPeers): two runs of the same phases at once race on one
	// host (at boot, two restores both created cbr0, and the loser failed).
	hostMu   sync.Mutex
	rotating atomic.Bool
	keyAcks  map[keyAckKey]bool // gossip key steps confirmed to this master
	keyAcked chan struct{}

	unknownSince map[string]time.Time // decided nodes memberlist has not reported
	lastPeers    string               // peerKey of the last pod-network update
	restored     bool                 // RestoreHost succeeded since start
	// moved is set when this node's subnet moved and its host followed,
	// until its Node object is registered again with the new subnet.
	moved     time.Time
	promoting bool // becomeMaster started and has not finished
	// addrGone is when the address gossip advertises was first seen missing
	// from this host (zero while it is there); exitErr says why the agent
	// stopped by itself.
	addrGone time.Time
	exitErr  error
	chores   clusterChores

	// ctx ends when the agent stops: host changes, cluster chores and
	// letters in flight run under it, each in a goroutine of wg.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	hostKick chan struct{} // the pod network may need an update

	stop         chan struct{}
	done         chan struct{} // loop ended
	stopped      chan struct{} // Stop finished
	stopErr      error
	stopOnce     sync.Once
	reconnecting atomic.Bool
	// settleDigest is the digest the allocator last saw, and settleSince
	// when it last changed (guarded by mu).
	settleDigest uint64
	settleSince  time.Time
	// deferSince is when the allocator first held a move back (zero when
	// none is held back; guarded by mu).
	deferSince time.Time
	// extraSyncs counts the full-state exchanges reconnect and meetUnknown started
	// (memberlist's own periodic push/pull and digest syncs not included).
	extraSyncs atomic.Int64
}

// Start brings the agent up: it loads or creates the node's identity, starts
// gossip, joins through the peers, verifies the cluster's CA against the
// token's pin, persists what it learnt, and starts deciding.
func Start(ctx context.Context, o Options) (*Agent, error) {
	a := &Agent{opts: o, log: o.Logger, sentAt: map[string]time.Time{}, certs: make(chan map[string][]byte, 1),
		refused: make(chan string, 1), claims: map[string]gossip.Claim{}, heardAt: map[string]time.Time{}, refusedAt: map[string]time.Time{}, csrs: newCSRLimiter(), unknownSince: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{}), stopped: make(chan struct{}), hostKick: make(chan struct{}, 1),
		keyAcks: map[keyAckKey]bool{}, keyAcked: make(chan struct{}, 1)}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("node", o.Node.Name)
	if err := o.Dir.Ensure(); err != nil {
		return nil, err
	}
	if err := a.loadIdentity(); err != nil {
		return nil, err
	}
	if s, ok, err := o.Dir.LoadSecrets(); err != nil {
		return nil, err
	} else if ok {
		a.secrets = &s
	}
	if err := a.loadState(ctx); err != nil {
		return nil, err
	}
	g, err := gossip.New(gossip.Config{
		Name: o.Node.Name, Bind: o.Node.Bind, Advertise: o.Node.Advertise,
		Keys: a.id.GossipKeys, SignKey: a.sign, Version: version.Version,
		Timing: o.Timing, Logger: a.log, Transport: o.Transport,
	}, a.state)
	if err != nil {
		return nil, err
	}
	a.g = g
	if c := o.Create; c != nil {
		// The first tokens: any member admits a machine holding one.
		for _, t := range []struct {
			tok    pki.Token
			master bool
			desc   string
		}{{c.Token, false, "made by init"}, {c.MasterToken, true, "made by init, for masters"}} {
			if _, err := a.publishToken(t.tok, TokenRequest{TTL: c.TokenTTL, Description: t.desc, Master: t.master}); err != nil {
				g.Shutdown()
				return nil, err
			}
		}
	}
	if err := a.join(); err != nil {
		a.cancel()
		g.Shutdown()
		return nil, err
	}
	if err := a.persistJoin(); err != nil {
		a.cancel()
		g.Leave(time.Second)
		return nil, err
	}
	if err := a.startEndpoint(); err != nil {
		a.cancel()
		g.Leave(time.Second)
		return nil, err
	}
	if err := a.startImages(); err != nil {
		a.cancel()
		if a.endpoint != nil {
			a.endpoint.Stop()
		}
		g.Leave(time.Second)
		return nil, err
	}
	if o.Serve {
		if a.api, err = serveAPI(o.Dir.Socket(), a); err != nil {
			a.cancel()
			if a.endpoint != nil {
				a.endpoint.Stop()
			}
			g.Leave(time.Second)
			return nil, err
		}
	}
	go a.loop()
	a.spawn(a.hostLoop)
	a.spawn(a.healthLoop)
	a.spawn(func() { a.every(a.interval(), a.watchAddress) })
	if p := o.Snapshots; p != nil && p.Every > 0 {
		a.spawn(func() { a.snapshotLoop(*p) })
	}
	return a, nil
}

// loadState loads the saved state and the gossip keys, or gets them: a new
// cluster makes its key, a joiner is admitted with its token.
func (a *Agent) loadState(ctx context.Context) error {
	o := a.opts
	var pin *[32]byte
	switch {
	case o.Create != nil:
		p := o.Create.Token.CAPin
		pin = &p
	case o.Token != nil:
		pin = &o.Token.CAPin
	}
	st, err := LoadState(o.Dir, pin, a.log)
	if err != nil {
		return err
	}
	a.state = st
	switch {
	case o.Create != nil:
		if _, err := st.MergeCluster(o.Create.Cluster); err != nil {
			return fmt.Errorf("the new cluster's identity: %w", err)
		}
		if len(a.id.GossipKeys) == 0 {
			k, err := pki.NewGossipKey()
			if err != nil {
				return err
			}
			a.id.GossipKeys = [][]byte{k}
		}
		a.proveSeat(o.Create.MasterToken)
	case o.Token != nil:
		adm, err := a.admit(ctx, *o.Token)
		if err != nil {
			if !errors.Is(err, gossip.ErrJoin) && !errors.Is(err, gossip.ErrTokenRefused) {
				err = fmt.Errorf("%w: %w", ErrWrongCluster, err)
			}
			return err
		}
		if _, err := st.MergeCluster(adm.Cluster); err != nil {
			return fmt.Errorf("%w: %w", ErrWrongCluster, err)
		}
		a.id.GossipKeys = adm.Keys
		a.proveSeat(*o.Token)
	case len(a.id.GossipKeys) == 0:
		return fmt.Errorf("%s holds no gossip keys: this node cannot rejoin; run `knode reset` and join again with a token", o.Dir.Path(datadir.NodeFile))
	}
	return nil
}

// LoadState reads the records a node saved (its cluster identity and the
// replicated state), checking each as if it came from a peer; what fails is
// dropped (peers send it again). The cluster identity must match pin when
// given (a joiner's token), else the saved identity's own CA is trusted.
func LoadState(dir datadir.Dir, pin *[32]byte, log *slog.Logger) (*gossip.State, error) {
	var saved gossip.ClusterInfo
	err := dir.ReadJSON(datadir.ClusterFile, &saved)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if pin == nil {
		if err != nil {
			return nil, fmt.Errorf("no cluster identity in %s: %w", dir.Root, err)
		}
		p, perr := gossip.CAPin(&saved)
		if perr != nil {
			return nil, fmt.Errorf("cluster identity in %s: %w", dir.Path(datadir.ClusterFile), perr)
		}
		pin = &p
	}
	st := gossip.NewState(*pin)
	switch {
	case err == nil:
		if _, err := st.MergeCluster(&saved); err != nil {
			return nil, fmt.Errorf("cluster identity in %s: %w", dir.Path(datadir.ClusterFile), err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	raw, err := dir.ReadFile(datadir.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if _, rej, err := st.MergeFull(raw); err != nil || len(rej) > 0 {
		if log != nil {
			log.Warn("saved state partly ignored", "err", err, "refused", len(rej))
		}
	}
	return st, nil
}

func (a *Agent) loadIdentity() error {
	o := a.opts
	err := o.Dir.ReadJSON(datadir.NodeFile, &a.id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		key, kerr := pki.NewNodeKey()
		if kerr != nil {
			return fmt.Errorf("generate node key: %w", kerr)
		}
		a.id = datadir.Identity{Name: o.Node.Name, NodeKey: key.Bytes()}
	case err != nil:
		return err
	case a.id.Name != o.Node.Name:
		return config.Usagef("--data-dir %s belongs to node %q, not %q: use --node-name %s or another --data-dir",
			o.Dir.Root, a.id.Name, o.Node.Name, a.id.Name)
	}
	a.id.Bind, a.id.Advertise = o.Node.Bind, o.Node.Advertise
	// A test lifetime given at init or join holds for the restarted agent too.
	if o.CertLifetime != 0 {
		a.id.CertLifetime = o.CertLifetime
	}
	a.opts.CertLifetime = a.id.CertLifetime
	if len(o.Peers) > 0 {
		a.id.Peers = o.Peers
	}
	key, err := pki.ParseNodeKey(a.id.NodeKey)
	if err != nil {
		return fmt.Errorf("node key in %s: %w", o.Dir.Path(datadir.NodeFile), err)
	}
	a.key = key
	if len(a.id.SignKey) == 0 {
		_, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("generate signing key: %w", err)
		}
		a.id.SignKey = sk.Seed()
	}
	if len(a.id.SignKey) != ed25519.SeedSize {
		return fmt.Errorf("signing key in %s: want %d bytes", o.Dir.Path(datadir.NodeFile), ed25519.SeedSize)
	}
	a.sign = ed25519.NewKeyFromSeed(a.id.SignKey)
	return nil
}

// join contacts the peers and checks that the cluster is the one the token pins.
func (a *Agent) join() error {
	if len(a.opts.Peers) > 0 {
		if err := a.g.Join(a.opts.Peers...); err != nil {
			switch {
			case a.opts.Rejoin:
				a.log.Warn("rejoin failed; running alone until a peer answers", "peers", a.opts.Peers, "err", err)
			case a.opts.Token != nil:
				// The token was fine (a member admitted this machine); that
				// member stopped answering, or the path to it broke, before
				// this machine could join its gossip.
				return fmt.Errorf("%w: this machine was admitted, but no peer answered its gossip afterwards (the member stopped, or the network to it broke): join again, through another member if that one is gone", err)
			default:
				return fmt.Errorf("%w (get the token with `knode token` on any member)", err)
			}
		}
	}
	ci := a.state.Cluster()
	if ci == nil {
		if err := a.g.ClusterError(); err != nil {
			return fmt.Errorf("%w: %w", ErrWrongCluster, err)
		}
		return fmt.Errorf("%w: the peer sent no cluster identity", gossip.ErrJoin)
	}
	a.cluster = ci.Cluster
	return nil
}

// persistJoin writes what a node needs to come back after a restart; the
// cluster file goes last because it marks the data directory initialised.
func (a *Agent) persistJoin() error {
	d := a.opts.Dir
	if err := a.saveIdentity(func(*datadir.Identity) {}); err != nil {
		return err
	}
	if c := a.opts.Create; c != nil {
		// For `knode token` on the first node; joiners keep no token (it
		// admits once, and expires).
		if err := d.WriteFile(datadir.TokenFile, []byte(c.Token.String()+"\n")); err != nil {
			return err
		}
		if err := d.WriteFile(datadir.MasterTokenFile, []byte(c.MasterToken.String()+"\n")); err != nil {
			return err
		}
	}
	if !d.Initialised() {
		return d.WriteJSON(datadir.ClusterFile, a.state.Cluster())
	}
	return nil
}

// publishSelf signs and gossips this node's record; edit may change it
// first. The record needs this node's decision (it is checked against the key
// the decision binds).
func (a *Agent) publishSelf(edit func(*gossip.NodeInfo)) error {
	a.mu.Lock()
	info := gossip.NodeInfo{Name: a.id.Name, HasSecrets: a.secrets != nil, EtcdRestore: a.id.EtcdRestore}
	if old, ok := a.state.Snapshot().Nodes[a.id.Name]; ok {
		info.Removed = old.Removed
	}
	if edit != nil {
		edit(&info)
	}
	// Generations are wall-clock based so that a node that lost its saved
	// state still supersedes its old record.
	a.id.Gen = max(a.id.Gen+1, uint64(time.Now().UnixNano()))
	info.Gen = a.id.Gen
	a.mu.Unlock()
	return a.g.Publish(info)
}

// Cluster is the cluster's plan.
func (a *Agent) Cluster() config.Cluster { return a.cluster }

// Name is this node's name.
func (a *Agent) Name() string { return a.id.Name }

// Addr is this node's gossip address.
func (a *Agent) Addr() string { return a.g.LocalAddr().String() }

// Snapshot is a copy of the replicated state.
func (a *Agent) Snapshot() gossip.Snapshot { return a.state.Snapshot() }

// Assignment is this node's current decision, if any.
func (a *Agent) Assignment() (gossip.Assignment, bool) {
	as, ok := a.state.Binding(a.id.Name)
	return as, ok && !as.Released && as.SignKey == a.signPub()
}

func (a *Agent) signPub() gossip.Key { return gossip.Key(a.sign.Public().(ed25519.PublicKey)) }

// HasSecrets reports whether this node holds the CA and service-account keys.
func (a *Agent) HasSecrets() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.secrets != nil
}

// ErrWrongCluster says the cluster reached does not have the CA the token pins.
var ErrWrongCluster = errors.New("refusing to join")

// ErrRefused says a master refused this node's claim (its name is taken).
var ErrRefused = errors.New("the cluster refused this node")

// ErrNoSubnet says the allocator could not give this node a subnet.
var ErrNoSubnet = errors.New("no pod subnet for this node")

// WaitAssigned waits until this node has a subnet (and a seat, if it is to be
// a master), or the allocator reports why it cannot have one.
func (a *Agent) WaitAssigned(ctx context.Context) (gossip.Assignment, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if as, ok := a.Assignment(); ok {
			if as.Error != "" {
				return as, fmt.Errorf("%w: %s", ErrNoSubnet, as.Error)
			}
			return as, nil
		}
		select {
		case <-ctx.Done():
			return gossip.Assignment{}, fmt.Errorf("waiting for a pod subnet (is a master or the allocator alive? see `knode status`): %w", ctx.Err())
		case why := <-a.refused:
			return gossip.Assignment{}, fmt.Errorf("%w: %s", ErrRefused, why)
		case <-t.C:
		}
	}
}

// Done is closed when the agent has stopped (for example after `knode reset`
// asked it to leave).
func (a *Agent) Done() <-chan struct{} { return a.stopped }
