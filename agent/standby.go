package agent

import (
	"time"

	"github.com/jailkeeper/jailkeeper/manifest"
)

// DefaultStandby is how long the previous live release keeps running after
// a deploy when neither the manifest nor defaults.standby says: long
// enough to notice a bad deploy and revert it, for one more running
// release per service.
const DefaultStandby = 15 * time.Minute

// StandbyOrDefault returns defaults.standby, or DefaultStandby when unset.
// Valid after LoadConfig or ParseConfig.
func (d *DefaultsConfig) StandbyOrDefault() time.Duration {
	if d.Standby == "" {
		return DefaultStandby
	}
	return d.standby
}

// validate parses defaults.standby and checks it against the manifest's
// bounds.
func (d *DefaultsConfig) validate(bad func(field, format string, args ...any)) {
	if d.Standby == "" {
		return
	}
	v, err := time.ParseDuration(d.Standby)
	switch {
	case err != nil:
		bad("defaults.standby", "must be a Go duration such as 15m, or 0 to turn standby off, got %q", d.Standby)
	case v < 0 || v > manifest.MaxStandby:
		bad("defaults.standby", "%s is not between 0s and %s", v, manifest.MaxStandby)
	default:
		d.standby = v
	}
}
