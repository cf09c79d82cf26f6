package registry

import (
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"
)

// ErrDigest is returned when content does not match the digest it was asked
// for (or its announced size).
var ErrDigest = errors.New("content does not match its digest")

// verifier reads exactly size bytes of the content named want from r and
// refuses to hand out its last bytes unless their hash matches: a reader
// that consumes it to EOF has seen verified content or an error, never a
// complete body of wrong bytes.
type verifier struct {
	r    io.Reader
	want digest.Digest
	size int64
	n    int64
	h    hash.Hash
	err  error
}

// newVerifier reads the content named want, size bytes, from its start.
func newVerifier(r io.Reader, want digest.Digest, size int64) *verifier {
	return &verifier{r: r, want: want, size: size, h: want.Algorithm().Hash()}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if rest := v.size - v.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	if len(p) == 0 {
		v.err = v.check()
		if v.err == nil {
			v.err = io.EOF
		}
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n == v.size {
		if cerr := v.check(); cerr != nil {
			v.err = cerr
			return 0, cerr // the last bytes are withheld
		}
		v.err = io.EOF
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		v.err = fmt.Errorf("%s: %w after %d of %d bytes", v.want, io.ErrUnexpectedEOF, v.n, v.size)
		return n, v.err
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

// check compares the hash of the whole content with its digest.
func (v *verifier) check() error {
	if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
		return fmt.Errorf("%s: %w (read %s)", v.want, ErrDigest, got)
	}
	return nil
}

// checkDigest validates a digest given by a client or a peer: sha256 only
// (knode computes and announces nothing else).
func checkDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w", s, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %q: only sha256 is supported", s)
	}
	return d, nil
}
