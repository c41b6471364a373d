// Package agent is the jailkeeper daemon: it loads the config, polls the deploy
// repo on a cron schedule or when triggered, runs reconcile passes one at a
// time, and serves /metrics, /status, /healthz, /readyz, /sync and /hooks/git.
// Suspend and resume come in on a separate unix socket (control.go), never
// on that TCP listener; suspensions are kept in the state dir (suspend.go),
// sync windows come from the config (windows.go).
package agent
