package gossip

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Message types: one byte, then the JSON body.
const (
	msgNode   byte = 1 // NodeInfo, broadcast
	msgAssign byte = 2 // Assignment, broadcast
	msgLetter byte = 3 // Letter, sent to one node
)

// Letter is a message for one node only, sent over memberlist's reliable
// (TCP, encrypted) channel and never broadcast: master secrets sealed to the
// recipient's key, certificate requests and the certificates that answer them.
type Letter struct {
	Kind string `json:"kind"`
	To   string `json:"to"`
	From string `json:"from"`
	Body []byte `json:"body"`
}

// Letter kinds.
const (
	LetterSecrets = "secrets" // Body: datadir.Secrets sealed with pki.Seal
	LetterCSR     = "csr"     // Body: JSON certificate requests
	LetterCert    = "cert"    // Body: JSON signed certificates
)

func encode(t byte, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode message %d: %w", t, err)
	}
	return append([]byte{t}, body...), nil
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
