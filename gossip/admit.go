package gossip

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"knode.dev/knode/pki"
)

// Admission: a joiner holds a join token but not the cluster's gossip key.
// Before it speaks memberlist it opens a TCP connection to the peer's gossip
// port and proves that it holds the token; the peer answers with the cluster
// identity and the gossip keys, sealed under an ephemeral X25519 exchange and
// keyed by the token's verifier. The joiner checks the identity against the
// token's pin as before. A member answers only for a token whose record (signed
// by the decision key) it holds and that has not expired or been deleted.
//
//	request  "KNJ1" | token ID (8) | nonce (32) | X25519 public (32) | HMAC(verifier, domain | ID | nonce | public) (32)
//	answer   0 | X25519 public (32) | sealed length | AES-GCM(keys)   or   1 | reason length | reason
//
// The keys are sealed with HKDF(X25519 secret, salt verifier) and the whole
// request and the answer's public key as additional data: only a holder of
// the verifier who saw this request can seal them, only this joiner can open
// them, and a recorded exchange is no use to someone who learns the token
// later.

const (
	admitMagic   = "KNJ1"
	admitReqSize = len(admitMagic) + 8 + 32 + 32 + 32
	// maxGossipKeys bounds a keyring (current key plus keys being rotated in
	// or out).
	maxGossipKeys = 4
	// admitTimeout bounds one exchange, on both sides.
	admitTimeout = 10 * time.Second
	// admitWait is how long a member waits for the record of a token it
	// does not know yet (gossip spreads a new one in well under a second).
	admitWait = 2 * time.Second
	// admitBusy answers a request that found no free slot.
	admitBusy = 2
	// admitReadTimeout bounds the wait for a request's bytes.
	admitReadTimeout = 3 * time.Second
	// maxAdmittingFrom bounds the join requests served at once for one
	// source address.
	maxAdmittingFrom = 16
	domainAdmit      = "knode join request v1\x00"
	labelAdmit       = "knode join keys v1"
)

// ErrTokenRefused says the member refused the token: unknown, expired or
// deleted.
var ErrTokenRefused = errors.New("the cluster refused the token")

// Admission is what a joiner receives once its token is accepted.
type Admission struct {
	Cluster *ClusterInfo // checked against the token's pin and the CA's signature
	Keys    [][]byte     // the gossip keyring, primary first
}

// Admit proves to the member at peer (host:port) that this machine holds tok
// and returns the cluster identity and gossip keys it answers with. The
// identity is checked against the token's pin before anything is returned.
func Admit(ctx context.Context, peer string, tok pki.Token) (Admission, error) {
	ctx, cancel := context.WithTimeout(ctx, admitTimeout)
	defer cancel()
	for {
		adm, err := admitOnce(ctx, peer, tok)
		if !errors.Is(err, errBusy) {
			return adm, err
		}
		select {
		case <-ctx.Done():
			return Admission{}, fmt.Errorf("%w through %s: the member is busy admitting others", ErrJoin, peer)
		case <-time.After(time.Duration(50+mrand.IntN(150)) * time.Millisecond):
		}
	}
}

// errBusy says the member had no free slot for the request.
var errBusy = errors.New("busy")

func admitOnce(ctx context.Context, peer string, tok pki.Token) (Admission, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", peer)
	if err != nil {
		return Admission{}, fmt.Errorf("%w through %s: %v", ErrJoin, peer, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	return admitOver(conn, peer, tok)
}

func admitOver(conn io.ReadWriter, peer string, tok pki.Token) (Admission, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return Admission{}, err
	}
	id, ver := tok.ID(), tok.Verifier()
	req := make([]byte, 0, admitReqSize)
	req = append(req, admitMagic...)
	req = append(req, id[:]...)
	req = append(req, randBytes(32)...)
	req = append(req, eph.PublicKey().Bytes()...)
	req = append(req, admitMAC(ver, req[len(admitMagic):])...)
	// A broken connection (the peer died or restarted) is ErrJoin: another
	// peer may answer. Only an answer that is whole and wrong is final.
	if _, err := conn.Write(req); err != nil {
		return Admission{}, fmt.Errorf("%w through %s: send the join request: %v", ErrJoin, peer, err)
	}
	r := bufio.NewReader(io.LimitReader(conn, maxCert+4096))
	status, err := r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Admission{}, fmt.Errorf("%w through %s: the peer closed the connection without answering: check that a knode agent of this version runs there", ErrJoin, peer)
		}
		return Admission{}, fmt.Errorf("%w through %s: no answer to the join request: %v", ErrJoin, peer, err)
	}
	if status == admitBusy {
		return Admission{}, errBusy
	}
	d := dec{b: mustReadAll(r)}
	if status != 0 {
		reason := d.string(maxText)
		if d.end() != nil || !validText(reason) {
			reason = "no reason given"
		}
		return Admission{}, fmt.Errorf("%w: %s", ErrTokenRefused, reason)
	}
	var peerPub [32]byte
	d.fixed(peerPub[:])
	sealed := d.bytes(maxCert + 1024)
	if err := d.end(); err != nil {
		if errors.Is(err, errTruncated) { // what arrived before the connection broke
			return Admission{}, fmt.Errorf("%w through %s: the answer to the join request broke off: the peer stopped or restarted", ErrJoin, peer)
		}
		return Admission{}, fmt.Errorf("join answer: %w", err)
	}
	pub, err := ecdh.X25519().NewPublicKey(peerPub[:])
	if err != nil {
		return Admission{}, fmt.Errorf("join answer: %w", err)
	}
	aead, err := admitAEAD(eph, pub, ver)
	if err != nil {
		return Admission{}, err
	}
	plain, err := aead.Open(nil, make([]byte, aead.NonceSize()), sealed, append(req, peerPub[:]...))
	if err != nil {
		return Admission{}, errors.New("the join answer is not sealed for this token: the peer does not hold it (someone in between?)")
	}
	adm, err := decodeAdmission(plain)
	if err != nil {
		return Admission{}, fmt.Errorf("join answer: %w", err)
	}
	if err := verifyCluster(adm.Cluster, tok.CAPin); err != nil {
		return Admission{}, err
	}
	return adm, nil
}

func mustReadAll(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	return b
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func admitMAC(verifier [32]byte, fields []byte) []byte {
	m := hmac.New(sha256.New, verifier[:])
	m.Write([]byte(domainAdmit))
	m.Write(fields)
	return m.Sum(nil)
}

func admitAEAD(priv *ecdh.PrivateKey, pub *ecdh.PublicKey, verifier [32]byte) (cipher.AEAD, error) {
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("key exchange: %w", err)
	}
	key, err := hkdf.Key(sha256.New, shared, verifier[:], labelAdmit, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	// Every exchange has its own key, so a fixed nonce is safe.
	return cipher.NewGCM(block)
}

func encodeAdmission(a Admission) []byte {
	var e enc
	e.bytes(a.Cluster.encode())
	e.uvarint(uint64(len(a.Keys)))
	for _, k := range a.Keys {
		e.bytes(k)
	}
	return e.b
}

func decodeAdmission(b []byte) (Admission, error) {
	d := dec{b: b}
	c, err := decodeCluster(d.bytes(maxCert + 1024))
	if err != nil {
		return Admission{}, err
	}
	n := d.uvarint()
	if n == 0 || n > maxGossipKeys {
		return Admission{}, fmt.Errorf("%d gossip keys", n)
	}
	a := Admission{Cluster: c}
	for range n {
		k := d.bytes(32)
		if len(k) != 32 {
			return Admission{}, errors.New("gossip key is not 32 bytes")
		}
		a.Keys = append(a.Keys, k)
	}
	return a, d.end()
}

// answerAdmission serves one join request that arrived on the gossip port
// (the magic already read).
func (n *Node) answerAdmission(conn net.Conn, r io.Reader) {
	defer conn.Close()
	// A joiner writes its whole request at once: a slow one is turned away
	// soon, so that a few silent connections cannot hold the slots.
	conn.SetDeadline(time.Now().Add(admitReadTimeout))
	req := make([]byte, admitReqSize)
	copy(req, admitMagic)
	if _, err := io.ReadFull(r, req[len(admitMagic):]); err != nil {
		return
	}
	conn.SetDeadline(time.Now().Add(admitTimeout))
	from := conn.RemoteAddr().String()
	var id [8]byte
	copy(id[:], req[4:12])
	refuse := func(why, tell string) {
		n.rejects.add("(joiner)", fmt.Errorf("%s from %s", why, from))
		e := enc{b: []byte{1}}
		e.string(tell)
		conn.Write(e.b)
	}
	const unknown = "token unknown, expired or deleted: create one with `knode token create` on a master"
	rec, ok := n.state.Token(id)
	// A token made a moment ago on a master may still be on its way here.
	for wait := time.Now().Add(admitWait); !ok && time.Now().Before(wait); {
		time.Sleep(100 * time.Millisecond)
		rec, ok = n.state.Token(id)
	}
	if !ok || !rec.ValidAt(time.Now()) {
		refuse("join request with an unknown, expired or deleted token", unknown)
		return
	}
	mac := req[admitReqSize-32:]
	if !hmac.Equal(mac, admitMAC(rec.Verifier, req[len(admitMagic):admitReqSize-32])) {
		refuse("join request with a wrong token secret", unknown)
		return
	}
	// Only a holder of the secret learns that its token is spent.
	if used := n.state.TokenUses(id); rec.UsedUp(used) {
		refuse(fmt.Sprintf("join request with token %s, which has admitted %d machines", rec.Name(), used),
			fmt.Sprintf("token %s has admitted %d machines, as many as it may (--uses): create another with `knode token create --uses N` on a master", rec.Name(), used))
		return
	}
	ci := n.state.Cluster()
	if ci == nil {
		return
	}
	answer, err := sealAdmission(req, rec.Verifier, Admission{Cluster: ci, Keys: n.Keys()})
	if err != nil {
		refuse(err.Error(), err.Error())
		return
	}
	conn.Write(answer)
	n.log.Info("admitted a joiner", "from", from, "token", rec.Name())
}

// sealAdmission is the answer to an accepted request: the admission sealed
// to the joiner's X25519 key, under the token's verifier.
func sealAdmission(req []byte, verifier Key, adm Admission) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(req[admitReqSize-64 : admitReqSize-32])
	if err != nil {
		return nil, fmt.Errorf("join request with a bad key: %w", err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	aead, err := admitAEAD(eph, pub, verifier)
	if err != nil {
		return nil, err
	}
	ephPub := eph.PublicKey().Bytes()
	sealed := aead.Seal(nil, make([]byte, aead.NonceSize()), encodeAdmission(adm), append(bytes.Clone(req), ephPub...))
	e := enc{b: []byte{0}}
	e.fixed(ephPub)
	e.bytes(sealed)
	return e.b, nil
}

// admitTransport sits in front of memberlist's transport: a stream that
// starts with the join magic is a join request, anything else is memberlist's.
type admitTransport struct {
	memberlist.Transport
	n       *Node
	streams chan net.Conn
	done    chan struct{}
	// busy bounds the join requests served at once: anyone can connect,
	// so a flood of them is turned away rather than queued; perSource
	// keeps one source from taking every slot.
	busy      chan struct{}
	mu        sync.Mutex
	perSource map[string]int
}

// maxAdmitting bounds the join requests a member serves at once.
const maxAdmitting = 32

func newAdmitTransport(inner memberlist.Transport, n *Node) *admitTransport {
	t := &admitTransport{Transport: inner, n: n, streams: make(chan net.Conn), done: make(chan struct{}), busy: make(chan struct{}, maxAdmitting),
		perSource: map[string]int{}}
	go t.sort()
	return t
}

func (t *admitTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *admitTransport) Shutdown() error {
	err := t.Transport.Shutdown()
	close(t.done)
	return err
}

func (t *admitTransport) sort() {
	for {
		select {
		case c := <-t.Transport.StreamCh():
			go t.sortOne(c)
		case <-t.done:
			return
		}
	}
}

// sortOne reads the first bytes of a stream: memberlist always writes a
// whole message before it waits for an answer, so they are there.
func (t *admitTransport) sortOne(c net.Conn) {
	// memberlist's own streams get its TCP timeout to show their first
	// bytes (a joiner starved of CPU in a crowd writes late); a join
	// request then has admitReadTimeout for the rest.
	c.SetReadDeadline(time.Now().Add(admitTimeout))
	r := bufio.NewReaderSize(c, 256)
	head, err := r.Peek(len(admitMagic))
	if err != nil {
		c.Close()
		return
	}
	if string(head) == admitMagic {
		release, ok := t.admitting(c.RemoteAddr())
		if !ok {
			// Busy: the joiner asks again shortly. Its request is read
			// first (closing on unread bytes would reset the connection
			// before the answer arrives).
			io.ReadFull(r, make([]byte, admitReqSize))
			c.Write([]byte{admitBusy})
			c.Close()
			return
		}
		defer release()
		r.Discard(len(admitMagic))
		t.n.answerAdmission(c, r)
		return
	}
	c.SetReadDeadline(time.Time{})
	select {
	case t.streams <- &bufferedConn{Conn: c, r: r}:
	case <-t.done:
		c.Close()
	}
}

// admitting takes a slot for a join request from addr, if one is free.
func (t *admitTransport) admitting(addr net.Addr) (release func(), ok bool) {
	host, _, _ := net.SplitHostPort(addr.String())
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.perSource[host] >= maxAdmittingFrom {
		return nil, false
	}
	select {
	case t.busy <- struct{}{}:
	default:
		return nil, false
	}
	t.perSource[host]++
	return func() {
		<-t.busy
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.perSource[host]--; t.perSource[host] == 0 {
			delete(t.perSource, host)
		}
	}, true
}

// bufferedConn is a stream whose first bytes were read ahead.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
