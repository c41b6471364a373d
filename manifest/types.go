package manifest

import "time"

// Service is one validated manifest with defaults applied.
type Service struct {
	Service   string            `json:"service"`
	SHA       string            `json:"sha"`
	Artifact  Artifact          `json:"artifact"`
	Hostnames []string          `json:"hostnames"`
	Port      int               `json:"port"`
	Command   []string          `json:"command"`
	Env       map[string]string `json:"env,omitempty"`
	EnvFile   string            `json:"env_file,omitempty"`
	User      string            `json:"user"`
	Health    Health            `json:"health"`
	Drain     time.Duration     `json:"drain"`
	Retain    int               `json:"retain"`
	Hosts     []string          `json:"hosts,omitempty"`
	// Template is the template's name, without a pinned snapshot.
	Template string `json:"template,omitempty"`
	// TemplateSnapshot is the snapshot that `template: NAME@SNAPSHOT`
	// pins, or "" when the manifest pins none (the agent clones the
	// newest). Part of the spec hash unless "" or "base".
	TemplateSnapshot string   `json:"template_snapshot,omitempty"`
	Allow            []string `json:"allow,omitempty"`
	// Data is the persistent data mounted into every release of the
	// service, in manifest order; nil when there is none. Part of the spec
	// hash.
	Data []Data `json:"data,omitempty"`
	// Limits are the resource limits of each release; the zero Limits
	// means the manifest sets none (the agent's defaults.limits apply).
	// Part of the spec hash.
	Limits Limits `json:"limits,omitzero"`
	// Standby is how long the previous live release keeps running after a
	// deploy's watch, for an instant rollback; 0 turns it off. nil means
	// the manifest does not say, and the agent's default applies. Not part
	// of the spec hash.
	Standby *time.Duration `json:"standby,omitempty"`
	// Canary is the weighted rollout after the gate; nil means none. Not
	// part of the spec hash.
	Canary *Canary `json:"canary,omitempty"`
	// Migrate is the argv run in a new release after it starts and before
	// its gate counts; nil means none. Part of the spec hash.
	Migrate []string `json:"migrate,omitempty"`
	// MigrateTimeout bounds Migrate: DefaultMigrateTimeout when the
	// manifest has migrate and no migrate_timeout, 0 without migrate. Not
	// part of the spec hash: like the health settings, it changes how a
	// release is handled, not what runs.
	MigrateTimeout time.Duration `json:"migrate_timeout,omitempty"`

	// File is the manifest's path inside the fs.FS it was loaded from.
	File string `json:"-"`
	// EnvFileDigest is the hex sha256 of env_file's content, set by the agent
	// after it reads the secret; part of the spec hash, never the content.
	EnvFileDigest string `json:"-"`
}

// Artifact is where the build comes from and what it must hash to.
type Artifact struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// Health is the gate a release passes before and after it gets traffic.
type Health struct {
	Path      string        `json:"path"`
	Interval  time.Duration `json:"interval"`
	Timeout   time.Duration `json:"timeout"`
	Threshold int           `json:"threshold"`
	Deadline  time.Duration `json:"deadline"`
	Watch     time.Duration `json:"watch"`
}

// Data is one persistent data set of a service (manifest key data): a ZFS
// dataset <dataset>/data/<service>/<Name> that outlives releases, mounted
// at Path inside each release.
type Data struct {
	// Name is the data set's name: ^[a-z][a-z0-9_]{0,31}$, unique in
	// the manifest. The process runtime passes the path as DATA_<NAME>.
	Name string `json:"name"`
	// Path is where it is mounted inside the release: absolute, clean,
	// not a system directory that a release needs (DataPathProblem).
	Path string `json:"path"`
	// Quota is the dataset's ZFS quota in bytes; 0 means none.
	Quota int64 `json:"quota,omitempty"`
}

// Limits are the resource limits of each release (manifest key limits).
// A zero field is not limited. On FreeBSD, Memory, PCPU, MaxProc and
// OpenFiles become rctl(8) jail rules (memoryuse, pcpu, maxproc,
// openfiles) and Disk the ZFS quota of the release's clone.
type Limits struct {
	// Memory is the resident memory in bytes (rctl memoryuse).
	Memory int64 `json:"memory,omitempty"`
	// PCPU is the CPU in percent of one core, so 200 is two cores
	// (rctl pcpu).
	PCPU int `json:"pcpu,omitempty"`
	// MaxProc is the number of processes (rctl maxproc).
	MaxProc int `json:"maxproc,omitempty"`
	// OpenFiles is the number of open file descriptors (rctl
	// openfiles).
	OpenFiles int `json:"openfiles,omitempty"`
	// Disk is the ZFS quota of the release's clone in bytes.
	Disk int64 `json:"disk,omitempty"`
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// Canary is a weighted rollout (manifest key canary): after the gate the
// new release gets Steps[0] percent of the requests for Interval, then
// Steps[1] percent, and so on, then all of them. More than MaxFailures
// failures of the new release abort it.
type Canary struct {
	// Steps are the percentages of requests the new release gets,
	// strictly increasing, each 1 to 99.
	Steps []int `json:"steps"`
	// Interval is how long each step lasts.
	Interval time.Duration `json:"interval"`
	// MaxFailures is the number of failed requests or probes of the new
	// release that aborts the canary.
	MaxFailures int `json:"max_failures"`
}
