// Package gitsource polls the deploy repo with go-git and hands out the
// manifest directory of its head commit.
//
// A Source keeps a persistent bare clone in Config.Dir (the agent uses
// <state_dir>/repo). Every Poll lists the remote branch (the equivalent of
// `git ls-remote`) and fetches only when the branch moved, with a forced
// refspec, so a force-pushed branch is followed; a `git revert` is just a new
// commit. The manifest directory (Config.Path) of the commit is read from the
// git objects, never from a worktree, into an immutable in-memory fs.FS.
//
// A deploy repo is input from whoever can push to it, so reading a commit
// is bounded before anything is read: only the trees on Config.Path and the
// manifest directory's own tree are decoded (each at most 4 MiB, checked
// from its object header), the directory may hold at most
// manifest.MaxEntries entries, and only its *.yaml and *.yml files are read,
// together at most manifest.MaxTotalSize bytes (sizes from the blob
// headers). Subdirectories, symlinks' targets and the rest of the repo are
// never opened, so a "tree bomb" of nested trees naming 10⁹ paths costs
// nothing. A breach is an error wrapping ErrLimit and the last good commit
// stays in effect. Poll stops when its context ends (Config.Timeout).
//
// Transports: ssh:// and scp-like URLs (user@host:path) with a private key
// and a pinned known_hosts file (an unknown or changed host key is refused,
// there is no trust on first use); https:// and http:// with an optional token
// read from a file and sent as HTTP basic auth (plain http only to loopback
// when a token is set); file:// URLs and local paths.
//
// With Config.VerifyKeyring set, the head commit must carry a valid OpenPGP
// signature by a key of that keyring. A head that is unsigned or badly signed
// is refused with an error wrapping ErrSignature, and the last verified
// commit stays in effect.
//
// A valid signature is not enough: the head must also be the last verified
// commit or descend from it. Otherwise anyone who can push, without a
// signing key, could force-reset the branch to an older signed commit and
// roll the hosts back to it. Such a head (a reset to an older commit, or a
// force push of rewritten history, even onto a newly signed commit) is
// refused with an error wrapping both ErrSignature and ErrDowngrade, and the
// last verified commit stays in effect. Roll back with `git revert -S`
// instead. When a rewrite is intended, the operator accepts its head by
// pointing the recorded last verified commit at it, in the agent's clone:
//
//	git --git-dir=<state_dir>/repo update-ref refs/jailkeeper/good/<branch> <sha>
//
// The next Poll takes it (it is read on every Poll; no restart needed).
// Deleting that ref (update-ref -d) instead accepts whatever signed head
// comes next; so does a fresh clone (an empty state_dir/repo, or a changed
// repo.url). The error message carries the exact command. The descent check
// reads at most 100,000 commits of the head's history and refuses the head
// when the last verified commit is not among them.
//
// Poll never gives up the last good state: on any error (unreachable remote,
// authentication, host key, signature, missing manifest directory, limits) it returns
// the last good Snapshot together with the error, so the agent keeps running
// the commit it had. The last good commit is also kept as a ref in the clone
// (refs/jailkeeper/good/<branch>), so it survives an agent restart.
//
// Like every leaf package of jailkeeper, gitsource returns errors and never
// logs.
package gitsource
