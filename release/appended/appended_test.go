package appended

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// writeBinary writes prog followed by payload's appended form and returns its path.
func writeBinary(t *testing.T, prog []byte, payload fs.FS) string {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(prog)
	if err := Write(&buf, payload); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "knode")
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// The members read back byte for byte, after any program; README and hidden files stay
// out; the program's bytes are not a member.
func TestRoundTrip(t *testing.T) {
	payload := fstest.MapFS{
		"manifest.json": {Data: []byte(`{"schema":1}`)},
		"payload.zst":   {Data: bytes.Repeat([]byte{0xfe, 0x01}, 3000)},
		"empty.zst":     {Data: nil},
		"README.md":     {Data: []byte("not shipped")},
		".x.zst.1.tmp":  {Data: []byte("a build's temporary file")},
	}
	for _, prog := range [][]byte{nil, []byte("\x7fELF launcher bytes, KNODEPL1 inside too")} {
		a, err := Open(writeBinary(t, prog, payload))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"manifest.json", "payload.zst", "empty.zst"} {
			got, err := fs.ReadFile(a, name)
			if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			if !bytes.Equal(got, payload[name].Data) {
				t.Errorf("%s: read %d bytes, wrote %d", name, len(got), len(payload[name].Data))
			}
		}
		for _, name := range []string{"README.md", ".x.zst.1.tmp", "launcher"} {
			if _, err := a.Open(name); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open(%s) = %v, want ErrNotExist", name, err)
			}
		}
		// Two opens of one member read independently.
		f1, _ := a.Open("payload.zst")
		f2, _ := a.Open("payload.zst")
		b1 := make([]byte, 3)
		io.ReadFull(f1, b1)
		b2, _ := io.ReadAll(f2)
		if len(b2) != 6000 {
			t.Errorf("second open read %d bytes after the first read 3, want 6000", len(b2))
		}
		a.Close()
	}
}

func TestNoPayload(t *testing.T) {
	for _, content := range [][]byte{nil, []byte("short"), bytes.Repeat([]byte("an ordinary program "), 100)} {
		path := filepath.Join(t.TempDir(), "prog")
		if err := os.WriteFile(path, content, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path); !errors.Is(err, ErrNone) {
			t.Errorf("Open(%d bytes without payload) = %v, want ErrNone", len(content), err)
		}
	}
}

// A footer or index that does not describe the file is refused, never read out of bounds.
func TestCorruptIndex(t *testing.T) {
	good := writeBinary(t, []byte("prog"), fstest.MapFS{"manifest.json": {Data: []byte("{}")}})
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	footer := len(data) - footerLen
	cases := map[string][]byte{
		"index length past the start": func() []byte {
			d := bytes.Clone(data)
			d[footer+len(magic)] = 0x7f
			return d
		}(),
		"member larger than the file": bytes.Replace(data, []byte(`"size":2`), []byte(`"size":9`), 1),
		"member name with a slash":    bytes.Replace(data, []byte(`"manifest.json"`), []byte(`"../manifest.j"`), 1),
		"index not JSON":              bytes.Replace(data, []byte(`{"members"`), []byte(`#"members"`), 1),
	}
	for name, d := range cases {
		path := filepath.Join(t.TempDir(), "knode")
		if err := os.WriteFile(path, d, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open = %v, want ErrCorrupt", name, err)
		}
	}
}
