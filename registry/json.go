package registry

import (
	"encoding/json"
	"io"
)

// writeJSON encodes v to w; a failed write is the client's loss only.
func writeJSON(w io.Writer, v any) { json.NewEncoder(w).Encode(v) }
