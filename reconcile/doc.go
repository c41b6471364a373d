// Package reconcile decides and carries out what a pass does. Plan is pure: it
// takes the desired services and what the host runs and returns, per service,
// one Step. The Executor carries steps out through the Runtime, Proxy, Prober
// and Fetcher interfaces declared here: create or reuse the target, gate it on
// its health endpoint, switch the route, watch, drain and retire the previous
// release, and collect what is no longer kept.
package reconcile
