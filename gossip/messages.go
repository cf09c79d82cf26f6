package gossip

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Message types: one byte, then the JSON body.
const (
	msgNode    byte = 1 // NodeInfo, broadcast
	msgAssign  byte = 2 // Assignment, broadcast
	msgSecrets byte = 3 // Sealed, sent to one node
)

// Sealed carries secrets sealed to one node's key (see pki.Seal).
type Sealed struct {
	To   string `json:"to"`
	From string `json:"from"`
	Box  []byte `json:"box"`
}

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
