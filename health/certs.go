package health

import (
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CertsIn lists the certificates (*.crt, *.pem holding a CERTIFICATE) under
// each directory, named by their path relative to it without the suffix.
// Unreadable files are skipped: expiry is about the certificates in use.
func CertsIn(dirs ...string) []CertFile {
	var out []CertFile
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".crt") || strings.HasSuffix(path, ".pem")) {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			block, _ := pem.Decode(data)
			if block == nil || block.Type != "CERTIFICATE" {
				return nil
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(dir, path)
			out = append(out, CertFile{Name: strings.TrimSuffix(strings.TrimSuffix(rel, ".crt"), ".pem"), NotAfter: cert.NotAfter})
			return nil
		})
	}
	return out
}
