package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `knode etcd restore` checks the file before anything else: a wrong file,
// a missing one and a damaged one each get one line naming it; a sound one
// on a host with no node is refused naming the data dir.
func TestEtcdRestoreRefusals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("knode etcd restore needs root first")
	}
	dir := tempDir(t)
	db := make([]byte, 4096)
	binary.LittleEndian.PutUint32(db[16:], 0xED0CDAED) // bbolt's magic
	sum := sha256.Sum256(db)
	sound := filepath.Join(dir, "sound.db")
	os.WriteFile(sound, append(db, sum[:]...), 0o600)
	damaged := filepath.Join(dir, "damaged.db")
	sum[0] ^= 1
	os.WriteFile(damaged, append(db, sum[:]...), 0o600)
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("hello\n"), 0o600)
	empty := filepath.Join(dir, "node")
	for _, tc := range []struct {
		file string
		code int
		want string
	}{
		{text, exitUsage, text + " (6 bytes): not an etcd snapshot"},
		{filepath.Join(dir, "none.db"), exitUsage, "no such file"},
		{damaged, exitError, damaged + ": etcd snapshot checksum mismatch"},
		{sound, exitUsage, "--data-dir " + empty + " holds no node"},
	} {
		code, _, stderr := knode(context.Background(), "etcd", "restore", tc.file, "--data-dir", empty)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("restore %s: exit %d, stderr %q; want exit %d and one line with %q", filepath.Base(tc.file), code, stderr, tc.code, tc.want)
		}
	}
}
