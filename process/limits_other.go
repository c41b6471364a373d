//go:build !linux || mips || mipsle || mips64 || mips64le

package process

import "github.com/jailkeeper/jailkeeper/release"

// LimitsApplied reports whether Start applies a release's limits on this
// system. It does not here: FreeBSD has no prlimit(2) (the jail runtime is
// the one that limits releases there, with rctl(8)), and elsewhere the
// process runtime does not run. A release with limits runs unlimited.
const LimitsApplied = false

// applyLimits does nothing here (see LimitsApplied).
func applyLimits(int, release.Limits) error { return nil }
