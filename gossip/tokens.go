package gossip

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// TokenRecord says that a join token is valid: its public ID, the verifier a
// member checks a joiner's proof against, when it expires, who made it. Only
// a master can write one (it is signed with the decision key); deleting a
// token is a newer record of it with Deleted set. The token's secret is never
// in a record: a member can check a joiner, not make up a token.
type TokenRecord struct {
	ID       [8]byte
	Verifier Key
	Expires  int64 // unix seconds; 0: never
	Deleted  bool
	// Master tokens also let a joiner take a free master seat (and with it
	// the master keys); any other token admits workers only.
	Master bool
	// Uses is how many machines (new node names) the token may admit; 0
	// for no limit. Every decision records the token that admitted its
	// node, so any allocator counts the same uses.
	Uses        uint32
	Description string
	Gen         uint64 // unix nanoseconds when written; a newer one replaces it
	By          string // the master that wrote it
	Sig         Sig
}

// MaxTokenUses bounds a token's use limit (far more nodes than a cluster
// can hold).
const MaxTokenUses = 1 << 20

// tokenKeep is how long a record outlives its expiry before every node drops
// it (and refuses it from peers that have not yet), so the list of tokens
// does not grow forever.
const tokenKeep = time.Hour

// maxTokens bounds the token records a state holds.
const maxTokens = 4096

// ErrStale says a record is past keeping (an expired token); it is dropped
// quietly, not counted as a refusal.
var ErrStale = errors.New("stale record")

// Name is the record's key: its ID in hex.
func (t TokenRecord) Name() string { return hex.EncodeToString(t.ID[:]) }

// ValidAt reports whether the token admits a joiner at now.
func (t TokenRecord) ValidAt(now time.Time) bool {
	return !t.Deleted && (t.Expires == 0 || now.Unix() < t.Expires)
}

func (t *TokenRecord) body(e *enc) {
	e.fixed(t.ID[:])
	e.fixed(t.Verifier[:])
	e.varint(t.Expires)
	e.flags(t.Deleted, t.Master)
	e.uvarint(uint64(t.Uses))
	e.string(t.Description)
	e.uvarint(t.Gen)
	e.string(t.By)
}

// SignedBytes is what the decision key signs.
func (t *TokenRecord) SignedBytes() []byte {
	e := enc{b: []byte(domainToken)}
	t.body(&e)
	return e.b
}

// Sign signs the record with the decision key.
func (t *TokenRecord) Sign(key ed25519.PrivateKey) {
	copy(t.Sig[:], ed25519.Sign(key, t.SignedBytes()))
}

// EncodeToken is the broadcast message for a token record.
func EncodeToken(t TokenRecord) []byte {
	e := enc{b: []byte{msgToken}}
	t.body(&e)
	e.fixed(t.Sig[:])
	return e.b
}

func decodeToken(b []byte) (TokenRecord, error) {
	d := dec{b: b}
	var t TokenRecord
	d.fixed(t.ID[:])
	d.fixed(t.Verifier[:])
	t.Expires = d.varint()
	f := d.flags(2)
	t.Deleted, t.Master = f[0], f[1]
	uses := d.uvarint()
	if uses > MaxTokenUses {
		d.fail(fmt.Errorf("%d uses", uses))
	}
	t.Uses = uint32(uses)
	t.Description = d.string(maxText)
	t.Gen = d.uvarint()
	t.By = d.string(maxName)
	d.fixed(t.Sig[:])
	return t, d.end()
}

func (t TokenRecord) validate(now time.Time) error {
	switch {
	case !ValidName(t.By):
		return fmt.Errorf("bad author name %q", t.By)
	case !validText(t.Description):
		return errors.New("bad description")
	case t.Uses > MaxTokenUses:
		return fmt.Errorf("%d uses", t.Uses)
	case t.Expires < 0:
		return fmt.Errorf("expiry %d", t.Expires)
	case t.Gen > uint64(now.UnixNano())+genLead:
		return fmt.Errorf("generation %d is ahead of this node's clock", t.Gen)
	case t.Expires != 0 && now.Add(-tokenKeep).Unix() > t.Expires:
		return ErrStale
	}
	return nil
}

// UsedUp reports whether the token admitted as many machines as it may, used
// being the names it admitted so far (TokenUses).
func (t TokenRecord) UsedUp(used int) bool { return t.Uses > 0 && used >= int(t.Uses) }

// TokenUses counts the node names each token admitted, by token ID: the
// decisions that record it, released ones included (a use is spent once a
// name is admitted).
func TokenUses(assignments map[string]Assignment) map[[8]byte]int {
	uses := map[[8]byte]int{}
	for _, a := range assignments {
		if a.Token != ([8]byte{}) {
			uses[a.Token]++
		}
	}
	return uses
}

// TokenUses is how many machines the token with this ID admitted.
func (s *State) TokenUses(id [8]byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.snap.Assignments {
		if a.Token == id {
			n++
		}
	}
	return n
}

// SeatProof is what a joiner adds to its claim to show that it holds the
// master token with this verifier: bound to its name and key, so that it is
// no use to anyone else.
func SeatProof(verifier Key, name string, signKey Key) [32]byte {
	m := hmac.New(sha256.New, verifier[:])
	m.Write([]byte(domainSeat))
	m.Write([]byte(name))
	m.Write(signKey[:])
	return [32]byte(m.Sum(nil))
}

// ProvenToken is the token claim c proves, if it proves one that was valid
// when the claim was made. A new name is admitted only with one, so an
// expired or deleted token admits nobody, whoever holds the gossip key.
func ProvenToken(tokens map[string]TokenRecord, c Claim) (TokenRecord, bool) {
	if c.Proof == ([32]byte{}) {
		return TokenRecord{}, false
	}
	t, ok := tokens[hex.EncodeToString(c.TokenID[:])]
	if !ok || !t.ValidAt(time.Unix(0, c.Time)) {
		return TokenRecord{}, false
	}
	want := SeatProof(t.Verifier, c.Name, c.SignKey)
	return t, hmac.Equal(want[:], c.Proof[:])
}

// MaySeat reports whether claim c proves a master token that was valid when
// the claim was made: only such a claimant may take a free master seat.
func MaySeat(tokens map[string]TokenRecord, c Claim) bool {
	t, ok := ProvenToken(tokens, c)
	return ok && t.Master
}

// MergeToken keeps the newest valid token record of its ID.
func (s *State) MergeToken(t TokenRecord) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ci := s.snap.Cluster
	if ci == nil {
		return false, ErrNoCluster
	}
	if err := t.validate(s.now()); err != nil {
		return false, err
	}
	name := t.Name()
	old, ok := s.snap.Tokens[name]
	if ok && old.Gen >= t.Gen {
		return false, nil
	}
	if !ok && len(s.snap.Tokens) >= maxTokens {
		return false, fmt.Errorf("%d token records held", maxTokens)
	}
	if ok && old.Verifier != t.Verifier {
		return false, fmt.Errorf("token %s: another verifier", name)
	}
	if !ed25519.Verify(ci.DecisionKey[:], t.SignedBytes(), t.Sig[:]) {
		return false, fmt.Errorf("token %s: %w", name, ErrBadSig)
	}
	if ok {
		s.digest ^= digestOf(old.Sig)
	}
	s.digest ^= digestOf(t.Sig)
	s.snap.Tokens[name] = t
	s.notify()
	return true, nil
}

// Token is the record of the token with this ID, if held.
func (s *State) Token(id [8]byte) (TokenRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.snap.Tokens[hex.EncodeToString(id[:])]
	return t, ok
}

// PruneTokens drops the records of tokens that expired over tokenKeep ago
// (every node does the same, and refuses them from peers).
func (s *State) PruneTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for name, t := range s.snap.Tokens {
		if errors.Is(t.validate(now), ErrStale) {
			s.digest ^= digestOf(t.Sig)
			delete(s.snap.Tokens, name)
			s.notify()
		}
	}
}
