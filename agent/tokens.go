package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
)

// DefaultTokenTTL is how long a join token admits machines unless told
// otherwise (kubeadm's default too).
const DefaultTokenTTL = 24 * time.Hour

// ErrNotMaster says a request needs the master keys this node does not hold.
var ErrNotMaster = errors.New("this node holds no master keys (no decision key): run it on a master (`knode status` shows the roles)")

// ErrNoToken says no token has the given ID.
var ErrNoToken = errors.New("no such token")

// TokenInfo describes a join token without its secret.
type TokenInfo struct {
	ID          string     `json:"id"`
	Description string     `json:"description,omitempty"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires"` // nil: never
	State       string     `json:"state"`   // valid, expired or deleted
	Master      bool       `json:"master"`  // may take a free master seat
	Uses        uint32     `json:"uses"`    // machines it may admit; 0: no limit
	Used        int        `json:"used"`    // machines it admitted
	By          string     `json:"by"`
}

// NewToken is a token just made: the secret, shown once.
type NewToken struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

func tokenInfo(t gossip.TokenRecord, used int, now time.Time) TokenInfo {
	ti := TokenInfo{ID: t.Name(), Description: t.Description, Created: time.Unix(0, int64(t.Gen)).UTC(), By: t.By, State: "valid", Master: t.Master,
		Uses: t.Uses, Used: used}
	if t.Expires != 0 {
		e := time.Unix(t.Expires, 0).UTC()
		ti.Expires = &e
	}
	switch {
	case t.Deleted:
		ti.State = "deleted"
	case !t.ValidAt(now):
		ti.State = "expired"
	case t.UsedUp(used):
		ti.State = "used up"
	}
	return ti
}

// Tokens lists the join tokens this node knows, oldest first.
func (a *Agent) Tokens() []TokenInfo {
	snap := a.state.Snapshot()
	now := time.Now()
	uses := gossip.TokenUses(snap.Assignments)
	out := make([]TokenInfo, 0, len(snap.Tokens))
	for _, name := range slices.Sorted(maps.Keys(snap.Tokens)) {
		t := snap.Tokens[name]
		out = append(out, tokenInfo(t, uses[t.ID], now))
	}
	slices.SortStableFunc(out, func(x, y TokenInfo) int { return x.Created.Compare(y.Created) })
	return out
}

// CreateToken makes a join token valid for req.TTL (0: no expiry), for at
// most req.Uses machines (0: any number), and tells the cluster, so that any
// member admits a machine holding it. Only a master can: the record is
// signed with the decision key.
func (a *Agent) CreateToken(req TokenRequest) (NewToken, error) {
	if req.Uses > gossip.MaxTokenUses {
		return NewToken{}, fmt.Errorf("a token may admit at most %d machines, not %d", gossip.MaxTokenUses, req.Uses)
	}
	ci := a.state.Cluster()
	if ci == nil {
		return NewToken{}, gossip.ErrNoCluster
	}
	ca, err := pki.LoadCA(ci.CACert, nil)
	if err != nil {
		return NewToken{}, err
	}
	tok, err := pki.NewToken(ca)
	if err != nil {
		return NewToken{}, err
	}
	rec, err := a.publishToken(tok, req)
	if err != nil {
		return NewToken{}, err
	}
	return NewToken{Token: tok.String(), Info: tokenInfo(rec, 0, time.Now())}, nil
}

func (a *Agent) publishToken(tok pki.Token, req TokenRequest) (gossip.TokenRecord, error) {
	key, ok := a.decisionKey()
	if !ok {
		return gossip.TokenRecord{}, ErrNotMaster
	}
	now := time.Now()
	rec := gossip.TokenRecord{ID: tok.ID(), Verifier: gossip.Key(tok.Verifier()), Description: req.Description, Master: req.Master,
		Uses: req.Uses, Gen: uint64(now.UnixNano()), By: a.id.Name}
	if req.TTL > 0 {
		rec.Expires = now.Add(req.TTL).Unix()
	}
	rec.Sign(key)
	return rec, a.g.PublishToken(rec)
}

// DeleteToken withdraws a token by its ID: no member admits a machine with
// it any more (machines already admitted stay).
func (a *Agent) DeleteToken(id string) error {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != pki.TokenIDSize {
		return fmt.Errorf("%w: %q is not a token ID (16 hex digits, see `knode token list`)", ErrNoToken, id)
	}
	rec, ok := a.state.Token([pki.TokenIDSize]byte(raw))
	if !ok {
		return fmt.Errorf("%w with ID %s (see `knode token list`)", ErrNoToken, id)
	}
	key, ok := a.decisionKey()
	if !ok {
		return ErrNotMaster
	}
	rec.Deleted, rec.By = true, a.id.Name
	rec.Gen = max(rec.Gen+1, uint64(time.Now().UnixNano()))
	rec.Sign(key)
	return a.g.PublishToken(rec)
}

// proveSeat keeps, for this node's claims, the proof that it holds tok:
// when tok is a master token, it may take a free master seat. (It is bound
// to this node's name and key, and is not the token.)
func (a *Agent) proveSeat(tok pki.Token) {
	a.id.SeatToken = tok.ID()
	a.id.SeatProof = gossip.SeatProof(gossip.Key(tok.Verifier()), a.id.Name, a.signPub())
}

// admit proves the join token to the first peer that answers and returns
// what it was given: the cluster identity (checked against the token's pin)
// and the gossip keys.
func (a *Agent) admit(ctx context.Context, tok pki.Token) (gossip.Admission, error) {
	var errs []error
	for _, p := range a.opts.Peers {
		adm, err := gossip.Admit(ctx, p, tok)
		if err == nil {
			return adm, nil
		}
		if errors.Is(err, gossip.ErrTokenRefused) || !errors.Is(err, gossip.ErrJoin) {
			return gossip.Admission{}, err // the token or the cluster is wrong: another peer will say the same
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return gossip.Admission{}, fmt.Errorf("%w: no peer to join through", gossip.ErrJoin)
	}
	return gossip.Admission{}, errors.Join(errs...)
}
