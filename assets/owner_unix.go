//go:build unix

package assets

import (
	"fmt"
	"os"
	"syscall"
)

// checkOwned refuses a directory that staging writes programs into unless only this
// process's user can change what is in it: root runs what is staged there, so a directory
// that someone else created in advance (for example under /tmp), owns, or may write into
// would let them swap a program between staging and its run. dir itself may be a symlink
// (a data directory kept on another disk) when the link belongs to this user or root; its
// target must pass the same checks. Its ancestors are trusted.
func checkOwned(dir string) error {
	euid := os.Geteuid()
	link, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	if link.Mode()&os.ModeSymlink != 0 {
		if uid := owner(link); uid != euid && uid != 0 {
			return fmt.Errorf("staging directory %s is a symlink owned by uid %d: knode stages only into directories that uid %d alone controls (remove it, or choose another --data-dir)", dir, uid, euid)
		}
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	switch {
	case !info.IsDir():
		return fmt.Errorf("staging directory %s is not a directory", dir)
	case owner(info) != euid:
		return fmt.Errorf("staging directory %s is owned by uid %d, not by uid %d who runs knode (chown it, remove it, or choose another --data-dir)", dir, owner(info), euid)
	case info.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("staging directory %s is writable by others (mode %#o): run chmod go-w %s, or choose another --data-dir", dir, info.Mode().Perm(), dir)
	}
	return nil
}

func owner(info os.FileInfo) int {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// CheckRootBinary refuses a knode binary that root is to read a payload from, stage, run
// and name in knode.service, unless only root can change it: another user who may write
// it would have their programs run as root, at every boot. $KNODE_LAUNCHER comes from the
// environment, so the program checks it as the launcher checks itself.
func CheckRootBinary(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if uid := owner(info); uid != 0 || info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s (uid %d, mode %#o) can be changed by others than root: root runs only a knode binary that root alone can change (chown root %s; chmod go-w %s)",
			path, uid, info.Mode().Perm(), path, path)
	}
	return nil
}
