// Package agent is the jailkeeper daemon: it loads the config, polls the deploy
// repo on a cron schedule or when triggered, runs reconcile passes one at a
// time, and serves /metrics, /status, /healthz, /readyz, /sync and /hooks/git.
package agent
