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
	Template  string            `json:"template,omitempty"`
	Allow     []string          `json:"allow,omitempty"`

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
