package assets

import "errors"

// ErrNoPayload is returned when this knode binary carries no payload.
var ErrNoPayload = errors.New("this knode was built without a payload; build it with `make` (see release/payload.mk)")

// ErrCorrupt is returned, wrapped with the name of the file, when the payload does not
// decompress to the content its manifest records (corrupted or truncated payload).
var ErrCorrupt = errors.New("payload is corrupt")
