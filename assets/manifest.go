package assets

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"knode.dev/knode/release/manifest"
)

// Manifest describes a payload: its files, the programs they provide (with versions) and
// its images. See knode.dev/knode/release/manifest.
type Manifest = manifest.Manifest

// readManifest reads and validates payload's manifest and returns it with the hex sha256 of
// its bytes, which identifies the payload.
func readManifest(payload fs.FS) (Manifest, string, error) {
	data, err := fs.ReadFile(payload, manifest.FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, "", ErrNoPayload
	}
	if err != nil {
		return Manifest{}, "", fmt.Errorf("read payload %s: %w", manifest.FileName, err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return Manifest{}, "", err
	}
	sum := sha256.Sum256(data)
	return m, hex.EncodeToString(sum[:]), nil
}
