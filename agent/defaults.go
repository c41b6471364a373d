package agent

import (
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// DefaultsConfig is the agent config's defaults: what applies to a
// manifest that does not say.
type DefaultsConfig struct {
	// Limits are the resource limits of every service whose manifest sets
	// none (no limits key, or `limits: {}`), written as a manifest's
	// limits key is: {memory, pcpu, maxproc, openfiles, disk}, with the
	// same units and bounds (manifest.DecodeLimits). A manifest that sets
	// any limit gets only its own: the block applies whole or not at all,
	// so a manifest never runs with a mix it did not write. The defaults
	// become part of the service's spec (and so of its release names):
	// changing them rolls out the services that use them, as changing the
	// limits in their manifests would.
	Limits yaml.Node `yaml:"limits"`

	// limits is Limits decoded by validate.
	limits manifest.Limits

	// Standby is how long a deploy leaves the release it replaced
	// running, for an instant rollback: a Go duration, as the manifest's
	// standby; 0 turns standby off. Empty means DefaultStandby.
	Standby string `yaml:"standby"`

	standby time.Duration // Standby parsed by validate
}

// DefaultLimits returns defaults.limits as validated; zero when unset.
func (c *Config) DefaultLimits() manifest.Limits { return c.Defaults.limits }

// validateDefaults decodes defaults.limits; each problem names the file,
// the line and the field (defaults.limits.memory, ...).
func (c *Config) validateDefaults() []error {
	if c.Defaults.Limits.Kind == 0 {
		return nil
	}
	l, err := manifest.DecodeLimits(c.File, "defaults.limits", &c.Defaults.Limits)
	var es manifest.Errors
	switch {
	case errors.As(err, &es):
		out := make([]error, len(es))
		for i, e := range es {
			out[i] = fmt.Errorf("%w: %s", ErrConfig, e)
		}
		return out
	case err != nil:
		return []error{fmt.Errorf("%w: %s: defaults.limits: %w", ErrConfig, c.File, err)}
	}
	c.Defaults.limits = l
	return nil
}

// applyDefaults gives the services of d that set no limits the agent's
// defaults.limits, before anything hashes their spec.
func (c *Config) applyDefaults(d *reconcile.Desired) {
	if d == nil || c.Defaults.limits.IsZero() {
		return
	}
	for i := range d.Services {
		if d.Services[i].Limits.IsZero() {
			d.Services[i].Limits = c.Defaults.limits
		}
	}
}
