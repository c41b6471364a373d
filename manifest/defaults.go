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
