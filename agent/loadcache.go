package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// loadCache is LoadDesired that does not read again what did not change
// (issue 11: an idle pass does constant work per service). The manifests
// of a revision are parsed once: a git revision names its content, so a
// poll that finds the branch where it was reuses them. Env files live on
// the host and may be rotated at any time, so each poll stats them, and
// reads and hashes one again only when it is another file or its size or
// modification time changed (nanoseconds on Linux, FreeBSD's UFS and ZFS).
// Safe for concurrent use; polls are serialised anyway.
type loadCache struct {
	mu       sync.Mutex
	revision string
	services []manifest.Service // filtered for the host, no env digests
	err      error              // of manifest.LoadPolicy on revision
	envs     map[string]envStamp
	// reads counts manifest parses and env file reads, for tests.
	reads int
}

// envStamp is what an env file's digest was computed from.
type envStamp struct {
	info   os.FileInfo
	digest string
}

// load returns the desired state of snap for host, as LoadDesired does.
func (c *loadCache) load(snap gitsource.Snapshot, policy manifest.Policy, host, secretsDir string) (*reconcile.Desired, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.services == nil && c.err == nil || c.revision != snap.Revision {
		c.revision, c.services, c.err = snap.Revision, nil, nil
		svcs, err := manifest.LoadPolicy(snap.FS, ".", policy)
		c.reads += len(svcs)
		if err != nil {
			c.err = err
		}
		c.services = []manifest.Service{}
		for _, s := range svcs {
			if s.ForHost(host) {
				c.services = append(c.services, s)
			}
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	d := &reconcile.Desired{Revision: snap.Revision, CommitTime: snap.Time}
	if len(c.services) > 0 {
		d.Services = make([]manifest.Service, 0, len(c.services))
	}
	var errs []error
	seen := map[string]bool{}
	for _, s := range c.services {
		if s.EnvFile != "" {
			digest, err := c.envDigest(filepath.Join(secretsDir, s.EnvFile))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: env_file: %w", s.File, err))
				continue
			}
			seen[filepath.Join(secretsDir, s.EnvFile)] = true
			s.EnvFileDigest = digest
		}
		d.Services = append(d.Services, s)
	}
	for p := range c.envs {
		if !seen[p] {
			delete(c.envs, p)
		}
	}
	return d, errors.Join(errs...)
}

// envDigest returns the sha256 of the file at p, from the cache when its
// stat says it is the same file, unchanged.
func (c *loadCache) envDigest(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if st, ok := c.envs[p]; ok && os.SameFile(st.info, fi) && st.info.Size() == fi.Size() && st.info.ModTime().Equal(fi.ModTime()) {
		return st.digest, nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	c.reads++
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if c.envs == nil {
		c.envs = map[string]envStamp{}
	}
	c.envs[p] = envStamp{info: fi, digest: digest}
	return digest, nil
}

// sameEnvFiles reports whether two desired states of one revision hash
// the same env files: within a revision only they can change what runs,
// and comparing digests costs nothing where sameSpecs hashes every spec.
func sameEnvFiles(a, b *reconcile.Desired) bool {
	if len(a.Services) != len(b.Services) {
		return false
	}
	for i := range a.Services {
		if a.Services[i].Service != b.Services[i].Service || a.Services[i].EnvFileDigest != b.Services[i].EnvFileDigest {
			return false
		}
	}
	return true
}
