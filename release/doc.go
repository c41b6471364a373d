// Package release is the vocabulary every part of jailkeeper shares about a
// release: what it is (Release), where it is in its life (State, Status),
// what a runtime needs to create one (Spec), the rules for the names that
// reach argv, file paths and dataset names, and the sentinel errors that
// runtimes return and reconcile acts on.
//
// It does no I/O and imports no other jailkeeper package, so reconcile can
// reason about releases without importing a runtime. The contract every
// runtime meets is pinned by the suite in release/runtimetest.
package release
