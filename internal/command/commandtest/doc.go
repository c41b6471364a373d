// Package commandtest provides Replay, a command.Runner for tests that
// records every command it is asked to run and answers from fixtures instead
// of running anything.
//
// Fixtures are chosen per argv. Their text must come from captured output of
// the real programs (see each testdata fixture's .source note); a command
// with no fixture succeeds with empty stdout, which is what the commands
// jailkeeper runs without reading their output (sysrc -c, zfs create,
// ifconfig ... alias, umount ...) print on success.
package commandtest
