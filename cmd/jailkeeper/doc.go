// Command jailkeeper is the GitOps agent for FreeBSD jails: its subcommands
// run the daemon, plan and inspect passes, and set up a host. Flags become an
// agent.Config; everything else lives in the packages.
//
// Each verb has its own file: run.go, plan.go, status.go, sync.go,
// validate.go, host.go (host init), template.go (template create),
// run_caddy.go and version.go. main.go holds the root command, the exit
// codes and the flags the verbs share; client.go the HTTP client that
// status and sync use to reach the running agent.
package main
