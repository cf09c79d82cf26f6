package gossip

import (
	"crypto/ed25519"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Letter is a message for one node only, sent over memberlist's reliable
// (TCP, encrypted) channel and never broadcast: join requests, master secrets
// sealed to the recipient's key, certificate requests and the certificates
// that answer them, and delta syncs. Every letter is signed by its author's
// node key; the receiver checks that signature against the key the author's
// decision binds (a claim carries its own key).
type Letter struct {
	Kind LetterKind
	From string
	To   string
	Time int64 // unix nanoseconds when sent
	Body []byte
	Sig  Sig
	// Cred is the author's own decision (as broadcast, signed by the
	// decision key), so that a receiver that has not yet heard of the author
	// can check who it is. It is not covered by Sig: it proves itself.
	Cred []byte
}

// LetterKind says what a letter's body is.
type LetterKind byte

// Letter kinds.
const (
	LetterClaim    LetterKind = 1 // Body: EncodeClaim; to masters
	LetterSecrets  LetterKind = 2 // Body: the master keys sealed with pki.Seal; from a master
	LetterCSR      LetterKind = 3 // Body: certificate requests
	LetterCert     LetterKind = 4 // Body: signed certificates; from a master
	LetterRefused  LetterKind = 5 // Body: the refused claim's key, then why; from a master
	LetterSyncReq  LetterKind = 6 // Body: the sender's version vector
	LetterSyncData LetterKind = 7 // Body: records the receiver lacks
	LetterKey      LetterKind = 8 // Body: a gossip key step (KeyStep), sealed with pki.Seal; from a master
	LetterKeyAck   LetterKind = 9 // Body: the step done and the key's hash; to the master that asked
	maxLetterKind             = LetterKeyAck
)

func (k LetterKind) String() string {
	switch k {
	case LetterClaim:
		return "claim"
	case LetterSecrets:
		return "secrets"
	case LetterCSR:
		return "csr"
	case LetterCert:
		return "cert"
	case LetterRefused:
		return "refused"
	case LetterSyncReq:
		return "sync-request"
	case LetterSyncData:
		return "sync-data"
	case LetterKey:
		return "gossip-key"
	case LetterKeyAck:
		return "gossip-key-ack"
	}
	return fmt.Sprintf("kind-%d", byte(k))
}

func (l *Letter) body(e *enc) {
	e.byte(byte(l.Kind))
	e.string(l.From)
	e.string(l.To)
	e.varint(l.Time)
	e.bytes(l.Body)
}

// SignedBytes is what the author signs.
func (l *Letter) SignedBytes() []byte {
	e := enc{b: []byte(domainLetter)}
	l.body(&e)
	return e.b
}

// Sign signs the letter with the author's node key.
func (l *Letter) Sign(key ed25519.PrivateKey) { copy(l.Sig[:], ed25519.Sign(key, l.SignedBytes())) }

// Verify checks the letter's signature with key.
func (l *Letter) Verify(key Key) bool { return ed25519.Verify(key[:], l.SignedBytes(), l.Sig[:]) }

// EncodeLetter is the wire form of a letter.
func EncodeLetter(l Letter) []byte {
	e := enc{b: []byte{msgLetter}}
	l.body(&e)
	e.fixed(l.Sig[:])
	e.bytes(l.Cred)
	return e.b
}

func decodeLetter(b []byte) (Letter, error) {
	d := dec{b: b}
	l := Letter{Kind: LetterKind(d.byte())}
	if l.Kind == 0 || l.Kind > maxLetterKind {
		d.fail(fmt.Errorf("unknown letter kind %d", l.Kind))
	}
	l.From = d.string(maxName)
	l.To = d.string(maxName)
	l.Time = d.varint()
	l.Body = d.bytes(maxBody)
	d.fixed(l.Sig[:])
	l.Cred = d.bytes(maxRecordSize)
	if err := d.end(); err != nil {
		return l, err
	}
	if !ValidName(l.From) || !ValidName(l.To) {
		return l, fmt.Errorf("bad letter address %q -> %q", l.From, l.To)
	}
	return l, nil
}

// broadcast is one queued record; a newer record for the same key replaces it.
type broadcast struct {
	key string
	msg []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*broadcast)
	return ok && ob.key == b.key
}
func (b *broadcast) Name() string    { return b.key }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}
