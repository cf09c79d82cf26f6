package health

import (
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CertsIn lists the certificates (*.crt, *.pem holding a CERTIFICATE) under
// each directory, named by their path relative to it without the suffix.
// Unreadable files are skipped: expiry is about the certificates in use.
func CertsIn(dirs ...string) []CertFile { return (&certCache{}).in(dirs...) }

// certCache is CertsIn for a caller that asks again and again (the health
// check, every 2 s): a file whose size and modification time are unchanged
// is not read and parsed again.
type certCache struct {
	files map[string]cachedCert
}

type cachedCert struct {
	size     int64
	mod      time.Time
	notAfter time.Time
	ok       bool // holds a certificate
}

func (c *certCache) in(dirs ...string) []CertFile {
	seen := map[string]cachedCert{}
	var out []CertFile
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".crt") || strings.HasSuffix(path, ".pem")) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			f, ok := c.files[path]
			if !ok || f.size != info.Size() || !f.mod.Equal(info.ModTime()) {
				f = cachedCert{size: info.Size(), mod: info.ModTime()}
				var err error
				if f.notAfter, f.ok, err = notAfter(path); err != nil {
					return nil // unreadable: skipped, and read again next time
				}
			}
			seen[path] = f
			if f.ok {
				rel, _ := filepath.Rel(dir, path)
				out = append(out, CertFile{Name: strings.TrimSuffix(strings.TrimSuffix(rel, ".crt"), ".pem"), NotAfter: f.notAfter})
			}
			return nil
		})
	}
	c.files = seen
	return out
}

// notAfter is the expiry of the first certificate in the PEM file at path,
// and whether it holds one.
func notAfter(path string) (time.Time, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, false, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}, false, nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, false, nil
	}
	return cert.NotAfter, true, nil
}
