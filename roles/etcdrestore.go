package roles

import "knode.dev/knode/gossip"

// EtcdRestoreToFollow picks the etcd restore that the master self must
// follow (rejoin the restored cluster through its restorer): the newest one
// announced by another master that holds a seat and is not removed, newer
// than followed (the newest restore self restored or followed already). A
// record's EtcdRestore counts only from a seated master: a worker, whatever
// its record says, never makes a master wipe its etcd. Equal times go to the
// lower name, so every master follows the same restorer.
func EtcdRestoreToFollow(s gossip.Snapshot, self string, followed uint64) (restorer string, at uint64, ok bool) {
	for _, m := range Masters(s) {
		n := s.Nodes[m]
		if m == self || n.Removed || n.EtcdRestore <= followed {
			continue
		}
		if n.EtcdRestore > at || (n.EtcdRestore == at && m < restorer) {
			restorer, at, ok = m, n.EtcdRestore, true
		}
	}
	return restorer, at, ok
}
