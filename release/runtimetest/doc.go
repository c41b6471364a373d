// Package runtimetest is the conformance suite every jailkeeper runtime
// passes: Run pins, as tests, the Runtime contract that reconcile states in
// prose (reconcile/interfaces.go), against a real runtime value and a host
// it can observe without going through the runtime.
//
// The contract the suite holds runtimes to:
//
//   - Create leaves a release in state ready, not running, listed by List
//     with the fields it returned. On any error nothing of the release is
//     left on the host (no directory, dataset, conf, address, jail), and
//     the name can be created afterwards. Creating a name that exists is
//     an error matching release.ErrExists, and leaves the release alone.
//   - Start and Stop are idempotent: starting a running release and
//     stopping a stopped one succeed and change nothing; a stopped release
//     starts again.
//   - SetStatus is stored: List, also a new runtime value's, reads back
//     the state, reason, failure count and time, and a standby's start
//     time, which any later state drops.
//   - List after a crash: a new runtime value over the same host (what an
//     agent sees after it was killed and restarted) lists the same
//     releases, with the same states and the same Running, and can stop,
//     start and destroy what the old value started.
//   - Destroy stops the release and removes everything of it; destroying
//     a destroyed release succeeds. When the release's storage is busy,
//     Destroy gives up after bounded retries with an error, and nothing is
//     half-removed: List (also a new runtime value's) still lists the
//     release, stopped, and a later Destroy finishes the job.
//   - Not found: Start, SetStatus and Running of a release that does not
//     exist return an error matching release.ErrNotFound. Stop and Destroy
//     of one succeed: stopping and destroying are idempotent, so a pass
//     interrupted half-way through a destroy can finish it.
//
// The suite imports no runtime: it takes one through the Runtime
// interface it declares (the methods of reconcile.Runtime) and a Harness
// the runtime's own tests build.
package runtimetest
