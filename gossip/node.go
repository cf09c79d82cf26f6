package gossip

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timing selects memberlist's timers.
type Timing int

const (
	// LAN is memberlist's default LAN profile, for real clusters.
	LAN Timing = iota
	// Fast shortens every timer, for tests and benchmarks on one machine.
	Fast
)

// Config describes one gossip endpoint.
type Config struct {
	Name      string
	Bind      netip.AddrPort // port 0 picks a free port
	Advertise netip.AddrPort // zero: memberlist chooses from Bind
	// Keys is the gossip keyring (32-byte AES keys), the primary first: the
	// cluster's own keys, received at admission, never the join token.
	Keys [][]byte
	// SignKey is this node's Ed25519 key: it signs the node's records and
	// letters; its public half is bound to Name by the node's decision.
	SignKey ed25519.PrivateKey
	// Version is this node's knode version, carried in memberlist's node
	// meta (informational: it decides nothing).
	Version string
	Timing  Timing
	Logger  *slog.Logger
	// Transport overrides the UDP/TCP transport (tests, byte counting).
	Transport memberlist.Transport
}

// Node is a running gossip endpoint bound to a State.
type Node struct {
	name    string
	key     ed25519.PrivateKey
	meta    []byte
	keyring *memberlist.Keyring
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	state   *State
	members *memberTable
	letters chan Letter
	changed chan struct{}
	log     *slog.Logger
	rejects *rejectLog
	syncs   *syncLimiter
	// clusterErr is why a peer's cluster identity was refused (wrong CA for
	// the token's pin, bad signature), for a joiner's error message.
	clusterErr atomic.Pointer[Rejection]
	// ready is set once memberlist is up: its callbacks may run before
	// Create returns, and must not start syncs before n.ml is set.
	ready atomic.Bool
	// stop ends the records' gossip round (spread) when the node leaves or
	// shuts down; spreading is done once it has returned.
	stop      chan struct{}
	stopOnce  sync.Once
	spreading sync.WaitGroup
}

// ClusterError says why the last cluster identity a peer sent was refused,
// or nil.
func (n *Node) ClusterError() error {
	if r := n.clusterErr.Load(); r != nil {
		return r.Err
	}
	return nil
}

// New starts a gossip endpoint. It does not contact anyone until Join.
func New(cfg Config, st *State) (*Node, error) {
	if len(cfg.Keys) == 0 || len(cfg.Keys) > maxGossipKeys {
		return nil, fmt.Errorf("gossip needs 1 to %d keys, got %d", maxGossipKeys, len(cfg.Keys))
	}
	keyring, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keys: %w", err)
	}
	if len(cfg.SignKey) != ed25519.PrivateKeySize {
		return nil, errors.New("gossip needs the node's signing key")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		name:    cfg.Name,
		key:     cfg.SignKey,
		keyring: keyring,
		state:   st,
		letters: make(chan Letter, 256),
		changed: make(chan struct{}, 1),
		log:     log.With("component", "gossip"),
		syncs:   newSyncLimiter(),
	}
	n.rejects = &rejectLog{log: n.log, counts: map[string]uint64{}}
	n.members = &memberTable{m: map[string]Member{}, changed: n.notify}

	// memberlist's LAN profile as it is, gossip round included: a 100 ms
	// round (tried, to spread news sooner) doubled the packets every node
	// handles while a cluster forms, and 200 agents forming at once
	// overflowed memberlist's handler queue (thousands of alive messages
	// and records dropped, hundreds of false suspicions) and took twice as
	// long to agree.
	mc := memberlist.DefaultLANConfig()
	if cfg.Timing == Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.GossipInterval = 50 * time.Millisecond
		// Short, but not so short that a loaded test machine (-race, two
		// cores) declares healthy nodes dead.
		mc.ProbeInterval = 500 * time.Millisecond
		mc.ProbeTimeout = 400 * time.Millisecond
		mc.PushPullInterval = 3 * time.Second
		mc.SuspicionMult = 3
		mc.GossipToTheDeadTime = 3 * time.Second
		// The local profile's 1 s for a push/pull stream made a join fail
		// when 20 agents joined at once on a loaded machine under -race.
		mc.TCPTimeout = 5 * time.Second
	}
	mc.Name = cfg.Name
	mc.BindAddr = cfg.Bind.Addr().String()
	mc.BindPort = int(cfg.Bind.Port())
	if cfg.Advertise.IsValid() {
		mc.AdvertiseAddr = cfg.Advertise.Addr().String()
		mc.AdvertisePort = int(cfg.Advertise.Port())
	}
	mc.Keyring = keyring
	// A dead node's name may come back from another address at once (a
	// restarted machine, a new IP): who a name is, is decided by knode's
	// signed decisions, not by memberlist's address table.
	mc.DeadNodeReclaimTime = time.Millisecond
	// Records are binary and mostly keys and signatures: LZW gains little
	// on them and costs an allocation-heavy pass over every packet.
	mc.EnableCompression = false
	mc.Delegate = delegate{n}
	mc.Events = delegate{n}
	mc.Ping = delegate{n}
	mc.LogOutput = logWriter{n.log}
	inner := cfg.Transport
	if inner == nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: stdlog.New(mc.LogOutput, "", 0)})
		if err != nil {
			return nil, fmt.Errorf("start gossip on %s: %w", cfg.Bind, err)
		}
		if mc.BindPort == 0 {
			mc.BindPort = nt.GetAutoBindPort()
			mc.AdvertisePort = mc.BindPort
		}
		inner = nt
	}
	// Join requests share the gossip port (one port to open, one address
	// to give a joiner).
	mc.Transport = newAdmitTransport(inner, n)
	n.meta = []byte(cfg.Version)
	mc.Alive = delegate{n}
	// A record missed by broadcast is repaired by the digest carried in
	// probe acks, so memberlist's own retransmit multiplier is enough.
	n.queue = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return n.ml.NumMembers() }, RetransmitMult: mc.RetransmitMult}
	ml, err := memberlist.Create(mc)
	if err != nil {
		mc.Transport.Shutdown()
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.Bind, err)
	}
	n.ml = ml
	n.ready.Store(true)
	n.stop = make(chan struct{})
	n.spreading.Add(1)
	go func() {
		defer n.spreading.Done()
		n.spread(mc.GossipInterval, spreadFanout, mc.UDPBufferSize, n.stop)
	}()
	return n, nil
}

func (n *Node) notify() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// Keys is the gossip keyring, the primary key first.
func (n *Node) Keys() [][]byte {
	primary := n.keyring.GetPrimaryKey()
	out := [][]byte{primary}
	for _, k := range n.keyring.GetKeys() {
		if string(k) != string(primary) {
			out = append(out, k)
		}
	}
	return out
}

// MembershipChanged is signalled (coalesced) when a member joins, leaves or dies.
func (n *Node) MembershipChanged() <-chan struct{} { return n.changed }

// Letters delivers the letters addressed to this node.
func (n *Node) Letters() <-chan Letter { return n.letters }

// State is the replicated state this node keeps.
func (n *Node) State() *State { return n.state }

// LocalAddr is the address peers use to reach this node.
func (n *Node) LocalAddr() netip.AddrPort {
	ln := n.ml.LocalNode()
	a, _ := netip.AddrFromSlice(ln.Addr)
	return netip.AddrPortFrom(a.Unmap(), ln.Port)
}

// ErrJoin says no peer could be contacted (or none accepted our key).
var ErrJoin = errors.New("could not join the cluster")

// ErrWrongKey says a peer answered with gossip this node cannot decrypt: the
// join token is wrong or belongs to another cluster.
var ErrWrongKey = errors.New("the peer's gossip uses another key: the token is wrong or belongs to another cluster")

// Join contacts the given peers (host:port) and exchanges full state with them.
func (n *Node) Join(peers ...string) error {
	ok, err := n.ml.Join(peers)
	if ok == 0 {
		if reason := joinReason(err); reason != ErrWrongKey.Error() {
			return fmt.Errorf("%w through %s: %s", ErrJoin, strings.Join(peers, ", "), reason)
		}
		return fmt.Errorf("%w through %s: %w", ErrJoin, strings.Join(peers, ", "), ErrWrongKey)
	}
	return nil
}

// joinReason turns memberlist's multi-line join error into one line that says
// what to check.
func joinReason(err error) string {
	if err == nil {
		return "no peer answered"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "decrypt"):
		// The peer answered, with gossip sealed under another key.
		return ErrWrongKey.Error()
	case strings.Contains(msg, "remote state is not encrypted"):
		return "the peer does not speak knode's encrypted gossip: check the address and port"
	case strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset"):
		// Not a wrong key: a peer with another key still answers (see above).
		return "the peer closed the connection without answering: check that a knode agent runs there"
	case strings.Contains(msg, "connection refused"):
		return "connection refused: no knode agent listens there"
	case strings.Contains(msg, "timeout") || strings.Contains(msg, "no route"):
		return "no answer (timeout): check the address and that the port is open between the machines"
	}
	return strings.Join(strings.Fields(msg), " ")
}

// Publish signs this node's own record, keeps it and gossips it.
func (n *Node) Publish(info NodeInfo) error {
	info.Name = n.name
	if _, bound := n.state.Binding(n.name); !bound {
		return ErrUnbound // published once this node's decision arrives
	}
	info.Sign(n.key)
	ch, err := n.state.MergeNode(info)
	if err != nil {
		return fmt.Errorf("publish own record: %w", err)
	}
	if ch {
		n.queueMsg("n/"+info.Name, EncodeNode(info))
	}
	return nil
}

// Decide keeps a signed decision and gossips it.
func (n *Node) Decide(a Assignment) error {
	ch, err := n.state.MergeAssignment(a)
	if err != nil {
		return fmt.Errorf("publish decision for %s: %w", a.Node, err)
	}
	if ch {
		n.queueMsg("a/"+a.Node, EncodeAssignment(a))
	}
	return nil
}

// PublishToken keeps a signed token record and gossips it.
func (n *Node) PublishToken(t TokenRecord) error {
	ch, err := n.state.MergeToken(t)
	if err != nil {
		return fmt.Errorf("publish token %s: %w", t.Name(), err)
	}
	if ch {
		n.queueMsg("t/"+t.Name(), EncodeToken(t))
	}
	return nil
}

// queueMsg queues a record for broadcast; msg must not be reused by the caller.
func (n *Node) queueMsg(key string, msg []byte) {
	n.queue.QueueBroadcast(&broadcast{key: key, msg: msg})
}

// Send signs a letter and delivers it to one live member over the reliable
// (TCP, encrypted) channel; it is never broadcast.
func (n *Node) Send(l Letter) error {
	// The address comes from membership events (memberlist's own node
	// structs are written under its lock and must not be read outside it).
	m, ok := n.members.get(l.To)
	if !ok || m.State != StateAlive {
		return fmt.Errorf("send %s to %s: not a live member", l.Kind, l.To)
	}
	return n.SendAt(l, m.Addr)
}

// SendAt is Send to a given address: for a claimant that is not a member
// (its name is bound to another machine's key, so its alive messages are
// refused, and it must still hear why).
func (n *Node) SendAt(l Letter, addr netip.AddrPort) error {
	l.From, l.Time = n.name, time.Now().UnixNano()
	l.Sign(n.key)
	if own, ok := n.state.Binding(n.name); ok {
		l.Cred = EncodeAssignment(own)
	}
	return n.ml.SendReliable(&memberlist.Node{Name: l.To, Addr: addr.Addr().AsSlice(), Port: addr.Port()}, EncodeLetter(l))
}

// Queued is the number of records waiting in the broadcast queue.
func (n *Node) Queued() int { return n.queue.NumQueued() }

// NumAlive is the number of members memberlist considers alive (this node
// included).
func (n *Node) NumAlive() int { return n.ml.NumMembers() }

// Rejected counts the records and letters refused, by the author they named.
func (n *Node) Rejected() map[string]uint64 { return n.rejects.snapshot() }

// Members lists every node this node has heard of, with its state.
func (n *Node) Members() []Member { return n.members.list() }

// Known reports whether memberlist has told this node of name (in any state).
func (n *Node) Known(name string) bool {
	_, ok := n.members.get(name)
	return ok
}

// KnownAt reports whether memberlist has told this node of name at addr (in
// any state).
func (n *Node) KnownAt(name string, addr netip.AddrPort) bool {
	m, ok := n.members.get(name)
	return ok && m.Addr == addr
}

// Alive is the set of names currently alive (suspects included: not yet
// declared dead). It is shared: callers must not modify it.
func (n *Node) Alive() map[string]bool { return n.members.alive() }

// Leave announces a graceful departure, waiting up to timeout for it to spread,
// then stops the endpoint.
func (n *Node) Leave(timeout time.Duration) error {
	n.stopSpreading()
	err := n.ml.Leave(timeout)
	if serr := n.ml.Shutdown(); err == nil {
		err = serr
	}
	return err
}

// Shutdown stops the endpoint without telling anyone (as a crash would).
func (n *Node) Shutdown() error {
	n.stopSpreading()
	return n.ml.Shutdown()
}

func (n *Node) stopSpreading() {
	n.stopOnce.Do(func() { close(n.stop) })
	n.spreading.Wait()
}

// HostPort formats an address for Join.
func HostPort(a netip.Addr, port uint16) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(int(port)))
}

// KeyStep is one step of a gossip key rotation, in the order a rotation
// takes them on every node: install the new key beside the old ones, make it
// the key this node sends with, then drop every other key.
type KeyStep byte

// Key rotation steps.
const (
	KeyInstall KeyStep = 1
	KeyUse     KeyStep = 2
	KeyDrop    KeyStep = 3
	// KeyAbort removes a key installed by a rotation that stopped.
	KeyAbort KeyStep = 4
)

// ApplyKeyStep changes the gossip keyring (memberlist decrypts with any
// installed key and encrypts with the primary one, so no message is lost
// while every node moves step by step).
func (n *Node) ApplyKeyStep(step KeyStep, key []byte) error {
	switch step {
	case KeyInstall:
		if slices.ContainsFunc(n.keyring.GetKeys(), func(k []byte) bool { return string(k) == string(key) }) {
			return nil // a resent step
		}
		if len(n.keyring.GetKeys()) >= maxGossipKeys {
			return fmt.Errorf("gossip keyring full (%d keys): finish or drop the rotation in progress first", maxGossipKeys)
		}
		return n.keyring.AddKey(key)
	case KeyUse:
		if err := n.keyring.AddKey(key); err != nil {
			return err
		}
		return n.keyring.UseKey(key)
	case KeyDrop:
		if string(n.keyring.GetPrimaryKey()) != string(key) {
			return errors.New("drop the old gossip keys: the new key is not in use here yet")
		}
		for _, k := range n.keyring.GetKeys() {
			if string(k) != string(key) {
				if err := n.keyring.RemoveKey(k); err != nil {
					return err
				}
			}
		}
		return nil
	case KeyAbort:
		if string(n.keyring.GetPrimaryKey()) == string(key) {
			return errors.New("the key of a stopped rotation is in use here")
		}
		return n.keyring.RemoveKey(key)
	}
	return fmt.Errorf("unknown gossip key step %d", step)
}
