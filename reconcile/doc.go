// Package reconcile decides and carries out what a pass does. Plan is pure: it
// takes the desired services and what the host runs (with what the Executor
// remembers: steps in flight, failed creates, stalled specs) and returns,
// per service, one Step. The Executor carries steps out through the Runtime,
// Proxy, Prober and Fetcher interfaces declared here. A deploy is an ordered
// list of steps (deploySteps): create or reuse the target, start it, gate it
// on its health endpoint, run its canary when the manifest asks for one
// (canary.go), switch the route, watch, promote it, drain and retire the
// previous release, and collect what the plan does not keep.
//
// A Hold (hold.go) keeps a service from changing: an operator's suspend
// freezes it on its live release, a sync window makes its new deploys and
// prunes wait (rollbacks go through). The agent answers Options.Hold; Plan
// reads the answers from Observed.Holds, and steps outside Plan (rebase,
// canary) ask Executor.Gate.
package reconcile
