package manifest

import "time"

// Defaults for the fields a manifest may leave out (DESIGN.md "Manifest v1").
const (
	DefaultUser            = "www"
	DefaultHealthPath      = "/up"
	DefaultHealthInterval  = 1 * time.Second
	DefaultHealthTimeout   = 2 * time.Second
	DefaultHealthThreshold = 3
	DefaultHealthDeadline  = 60 * time.Second
	DefaultHealthWatch     = 15 * time.Second
	DefaultDrain           = 10 * time.Second
	DefaultRetain          = 2
	// DefaultMigrateTimeout bounds a migrate command whose manifest sets
	// no migrate_timeout.
	DefaultMigrateTimeout = 5 * time.Minute
	// DefaultCanaryInterval and DefaultCanaryMaxFailures fill in a canary
	// block that leaves them out.
	DefaultCanaryInterval    = 2 * time.Minute
	DefaultCanaryMaxFailures = 5
	// DefaultTemplateSnapshot is the snapshot `template create` makes. A
	// pin to it hashes as no pin, so releases named before pins existed
	// keep their names.
	DefaultTemplateSnapshot = "base"
)

// Bounds that validation enforces. Health intervals go down to 100ms because
// tests use them; drain and watch may be 0 (no drain, no watch).
const (
	MinHealthInterval  = 100 * time.Millisecond
	MaxHealthInterval  = time.Minute
	MinHealthTimeout   = 10 * time.Millisecond
	MaxHealthTimeout   = time.Minute
	MaxHealthDeadline  = time.Hour
	MaxHealthWatch     = time.Hour
	MaxHealthThreshold = 100
	MaxDrain           = time.Hour
	MaxRetain          = 50
	// MinPort is the lowest port a manifest may name: the first that is
	// not privileged.
	MinPort = 1024
	// MaxFileSize is the largest manifest Decode and Load accept.
	MaxFileSize = 1 << 20
	// MaxEntries is the most entries (manifests, other files and
	// subdirectories) a manifest directory may hold: far more services
	// than one host runs, and a bound on what one commit costs to read.
	MaxEntries = 10000
	// MaxTotalSize bounds the manifests of one directory together, each
	// counted up to MaxFileSize+1 bytes.
	MaxTotalSize = 16 << 20

	// MaxData is the most data sets a manifest may list.
	MaxData = 16
	// MaxDataPath is the longest data path, in bytes.
	MaxDataPath = 255
	// MinSize is the smallest memory limit, disk limit or data quota:
	// smaller ones are unit mistakes (512 for 512M), and no release runs
	// in them.
	MinSize = 1 << 20
	// MaxPCPU is the largest pcpu limit, 1024 cores: rctl(8) counts pcpu
	// in percent of one core, and racct caps a jail's %CPU at 100 times
	// MAXCPU (sys/kern/kern_racct.c, racct_adjust_resource). No host
	// jailkeeper runs on has more cores; a larger value is a typo.
	MaxPCPU = 100 * 1024
	// MaxMaxProc is the largest maxproc limit: PID_MAX (sys/sys/proc.h)
	// is 99999, so a host never has more processes.
	MaxMaxProc = 99999
	// MaxOpenFiles is the largest openfiles limit: kern.maxfiles is an
	// int.
	MaxOpenFiles = 1<<31 - 1
	// MaxStandby is the longest standby: a day of a second release
	// running is far beyond a rollback window.
	MaxStandby = 24 * time.Hour
	// MinCanaryInterval and MaxCanaryInterval bound each canary step.
	MinCanaryInterval = time.Second
	MaxCanaryInterval = time.Hour
	// MaxCanaryFailures bounds canary.max_failures.
	MaxCanaryFailures = 1000000
	// MinMigrateTimeout and MaxMigrateTimeout bound migrate_timeout.
	// The live release keeps serving while a migration runs, so a long
	// one holds up only the deploy.
	MinMigrateTimeout = time.Second
	MaxMigrateTimeout = 24 * time.Hour
)

// DefaultCommand is the command of a service whose manifest has none:
// /usr/local/bin/<service>, a path inside the release.
func DefaultCommand(service string) []string {
	return []string{"/usr/local/bin/" + service}
}

// DefaultHealth is the health gate of a manifest without a health block.
func DefaultHealth() Health {
	return Health{
		Path:      DefaultHealthPath,
		Interval:  DefaultHealthInterval,
		Timeout:   DefaultHealthTimeout,
		Threshold: DefaultHealthThreshold,
		Deadline:  DefaultHealthDeadline,
		Watch:     DefaultHealthWatch,
	}
}
