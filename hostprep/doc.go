// Package hostprep turns a Linux host into a knode node and back.
//
// The work is split into named phases (see Phases). Each phase plans the
// changes that would bring the host from its current state to the state the
// Spec describes, and the Runner applies those plans in order. A phase whose
// plan is empty is already in place, so applying twice changes nothing; and
// every phase knows how to plan its own removal, which Reset uses on a host in
// any state, including a half-initialised one.
//
// All host access goes through the narrow interfaces gathered in Host, each
// with a real Linux implementation (NewLinuxHost) and a fake in the test-only
// package hostpreptest (hostpreptest.New) that renders the host's state as
// text for table tests.
//
// hostprep never imports gossip or roles: its input is the plain Spec, which
// the roles package fills from the cluster's agreed state.
package hostprep
