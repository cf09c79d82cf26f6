package gossip

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// Health is what a node checked about itself: which of its components run,
// whether its Node is Ready, etcd and apiserver readiness on masters, the
// kubelet's and containerd's versions and its soonest certificate expiry. It
// is signed with the node's own key (bound to its name by its decision), so
// a node can only ever speak for itself, and gossiped like NodeInfo: every
// node then knows the whole cluster's health even when no apiserver answers.
// A node publishes a new summary only when something in it changed.
type Health struct {
	Name string `json:"name"`
	// Gen is the wall-clock time of the check (nanoseconds, increasing): a
	// newer summary replaces an older one.
	Gen    uint64  `json:"gen"`
	Checks []Check `json:"checks"`
	// KubeletVersion and RuntimeVersion are what the Node object reports
	// (empty while unknown).
	KubeletVersion string `json:"kubeletVersion,omitempty"`
	RuntimeVersion string `json:"runtimeVersion,omitempty"`
	// CertExpiry is when the soonest of the node's certificates expires
	// (unix seconds; 0: none found), and CertName which one it is.
	CertExpiry int64  `json:"certExpiry,omitempty"`
	CertName   string `json:"certName,omitempty"`
	Sig        Sig    `json:"sig"`
}

// Check is the result of one check of a node's health.
type Check struct {
	What Component `json:"what"`
	OK   bool      `json:"ok"`
	// Detail says why a check failed (empty when it passed).
	Detail string `json:"detail,omitempty"`
}

// Component names what a check looked at.
type Component byte

// The components a node checks. Masters check all of them, workers the
// first four. New ones are appended (the byte is on the wire).
const (
	CompContainerd Component = iota + 1
	CompKubelet
	CompKubeProxy
	CompNodeReady
	CompEtcd
	CompAPIServer
	CompControllerManager
	CompScheduler
	maxComponent = 63 // accepted from newer peers, shown by number
)

var componentNames = map[Component]string{
	CompContainerd: "containerd", CompKubelet: "kubelet", CompKubeProxy: "kube-proxy", CompNodeReady: "node-ready",
	CompEtcd: "etcd", CompAPIServer: "apiserver", CompControllerManager: "controller-manager", CompScheduler: "scheduler",
}

func (c Component) String() string {
	if s, ok := componentNames[c]; ok {
		return s
	}
	return fmt.Sprintf("component-%d", byte(c))
}

// MarshalText makes components read as names in JSON.
func (c Component) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a component name.
func (c *Component) UnmarshalText(b []byte) error {
	for k, v := range componentNames {
		if v == string(b) {
			*c = k
			return nil
		}
	}
	var n byte
	if _, err := fmt.Sscanf(string(b), "component-%d", &n); err != nil || n == 0 || n > maxComponent {
		return fmt.Errorf("unknown component %q", b)
	}
	*c = Component(n)
	return nil
}

// Limits of a health summary.
const (
	maxChecks      = 16
	maxDetail      = 96
	maxHealthShort = 64 // versions, certificate names
)

const domainHealth = "knode health v2\x00"

// msgHealth is the message type of a Health broadcast (5 is the join
// tokens' record, on the lead's branch).
const msgHealth byte = 6

// Healthy reports whether every check passed (and there is at least one).
func (h Health) Healthy() bool {
	if len(h.Checks) == 0 {
		return false
	}
	for _, c := range h.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Same reports whether h and o say the same thing (ignoring Gen and Sig).
func (h Health) Same(o Health) bool {
	if h.Name != o.Name || h.KubeletVersion != o.KubeletVersion || h.RuntimeVersion != o.RuntimeVersion ||
		h.CertExpiry != o.CertExpiry || h.CertName != o.CertName || len(h.Checks) != len(o.Checks) {
		return false
	}
	for i := range h.Checks {
		if h.Checks[i] != o.Checks[i] {
			return false
		}
	}
	return true
}

func (h *Health) body(e *enc) {
	e.string(h.Name)
	e.uvarint(h.Gen)
	e.uvarint(uint64(len(h.Checks)))
	for _, c := range h.Checks {
		e.byte(byte(c.What))
		e.bool(c.OK)
		e.string(c.Detail)
	}
	e.string(h.KubeletVersion)
	e.string(h.RuntimeVersion)
	e.varint(h.CertExpiry)
	e.string(h.CertName)
}

// SignedBytes is what the node signs.
func (h *Health) SignedBytes() []byte {
	e := enc{b: []byte(domainHealth)}
	h.body(&e)
	return e.b
}

// Sign signs the summary with the node's key.
func (h *Health) Sign(key ed25519.PrivateKey) { copy(h.Sig[:], ed25519.Sign(key, h.SignedBytes())) }

// EncodeHealth is the broadcast message for a health summary.
func EncodeHealth(h Health) []byte {
	e := enc{b: []byte{msgHealth}}
	h.body(&e)
	e.fixed(h.Sig[:])
	return e.b
}

func decodeHealth(b []byte) (Health, error) {
	d := dec{b: b}
	h := Health{Name: d.string(maxName), Gen: d.uvarint()}
	n := d.uvarint()
	if n > maxChecks {
		d.fail(fmt.Errorf("%d checks exceed %d", n, maxChecks))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		h.Checks = append(h.Checks, Check{What: Component(d.byte()), OK: d.bool(), Detail: d.string(maxDetail)})
	}
	h.KubeletVersion = d.string(maxHealthShort)
	h.RuntimeVersion = d.string(maxHealthShort)
	h.CertExpiry = d.varint()
	h.CertName = d.string(maxHealthShort)
	d.fixed(h.Sig[:])
	return h, d.end()
}

// validate checks a summary's values (its signature is checked on merge,
// against the key its author's decision binds).
func (h Health) validate(nowNanos int64) error {
	switch {
	case !ValidName(h.Name):
		return fmt.Errorf("bad node name %q", h.Name)
	case h.Gen > uint64(nowNanos)+genLead:
		return fmt.Errorf("generation %d is ahead of this node's clock", h.Gen)
	case len(h.Checks) > maxChecks:
		return fmt.Errorf("%d checks exceed %d", len(h.Checks), maxChecks)
	case h.CertExpiry < 0:
		return errors.New("negative certificate expiry")
	}
	for _, s := range []string{h.KubeletVersion, h.RuntimeVersion, h.CertName} {
		if len(s) > maxHealthShort || !validText(s) {
			return fmt.Errorf("bad text %q", s)
		}
	}
	seen := map[Component]bool{}
	for _, c := range h.Checks {
		switch {
		case c.What == 0 || c.What > maxComponent:
			return fmt.Errorf("bad component %d", c.What)
		case seen[c.What]:
			return fmt.Errorf("component %s checked twice", c.What)
		case len(c.Detail) > maxDetail || !validText(c.Detail):
			return fmt.Errorf("bad detail for %s", c.What)
		}
		seen[c.What] = true
	}
	return nil
}

// MergeHealth keeps the node's newest valid summary, if it is signed with
// the key its decision binds: a node cannot publish another's health.
func (s *State) MergeHealth(h Health) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := h.validate(s.now().UnixNano()); err != nil {
		return false, err
	}
	old, ok := s.snap.Health[h.Name]
	if ok && old.Gen >= h.Gen {
		return false, nil
	}
	a, bound := s.snap.Assignments[h.Name]
	if !bound {
		return false, ErrUnbound // sent again by anti-entropy once the decision is here
	}
	if !ed25519.Verify(a.SignKey[:], h.SignedBytes(), h.Sig[:]) {
		return false, fmt.Errorf("health of %s: %w", h.Name, ErrBadSig)
	}
	if ok {
		s.digest ^= digestOf(old.Sig)
	}
	s.digest ^= digestOf(h.Sig)
	if s.snap.Health == nil {
		s.snap.Health = map[string]Health{}
	}
	h.Checks = append([]Check(nil), h.Checks...)
	s.snap.Health[h.Name] = h
	s.notify()
	return true, nil
}

// dropHealthLocked forgets name's summary (its name was bound to another
// key). Called with s.mu held.
func (s *State) dropHealthLocked(name string) {
	if h, held := s.snap.Health[name]; held {
		s.digest ^= digestOf(h.Sig)
		delete(s.snap.Health, name)
	}
}

// PublishHealth signs this node's health summary, keeps it and gossips it.
func (n *Node) PublishHealth(h Health) error {
	h.Name = n.name
	if _, bound := n.state.Binding(n.name); !bound {
		return ErrUnbound
	}
	h.Sign(n.key)
	ch, err := n.state.MergeHealth(h)
	if err != nil {
		return fmt.Errorf("publish own health: %w", err)
	}
	if ch {
		n.queueMsg("h/"+h.Name, EncodeHealth(h))
	}
	return nil
}
