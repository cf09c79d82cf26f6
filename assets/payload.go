package assets

import (
	"context"
	"embed"
	"io"
	"io/fs"
)

// embedded is the payload directory; without a release build it holds only its README.
//
//go:embed payload
var embedded embed.FS

// payloadFS returns the embedded payload directory.
func payloadFS() fs.FS {
	sub, err := fs.Sub(embedded, "payload")
	if err != nil {
		panic(err) // unreachable: "payload" is a valid path
	}
	return sub
}

// ReadManifest returns the embedded payload's manifest, or ErrNoPayload.
func ReadManifest() (Manifest, error) {
	m, _, err := readManifest(payloadFS())
	return m, err
}

// Stage stages the embedded payload under dataDir (see the package documentation for the
// layout), writing one progress line per staged item to progress (which may be nil). It
// returns ErrNoPayload when knode was built without a payload.
func Stage(ctx context.Context, dataDir string, progress io.Writer) (Staged, error) {
	return StageFS(ctx, payloadFS(), dataDir, progress)
}
