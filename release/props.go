package release

// The ZFS user properties of a release dataset (DESIGN.md, "State is the
// system"): the stored form of a Release's fields. Runtimes set them with
// -o at clone time and read only locally set values back. The process
// runtime keeps the same fields in release.json and sets only PropManaged
// and PropService on its clones.
const (
	// PropPrefix is the namespace of jailkeeper's user properties; it is
	// the zfs package's Prefix.
	PropPrefix = "jailkeeper:"

	PropManaged  = PropPrefix + "managed" // "yes" on every dataset jailkeeper made
	PropService  = PropPrefix + "service"
	PropSHA      = PropPrefix + "sha"
	PropSpec     = PropPrefix + "spec"
	PropIP       = PropPrefix + "ip"
	PropPort     = PropPrefix + "port"
	PropState    = PropPrefix + "state"
	PropCreated  = PropPrefix + "created"
	PropReason   = PropPrefix + "reason"
	PropFailures = PropPrefix + "failures"
	PropFailedAt = PropPrefix + "failed_at"
	PropMigrated = PropPrefix + "migrated_at" // when the migration finished (RFC 3339)
	// PropLimits is Limits.String(), set by the clone when the release
	// has limits (the jail runtime reads it at start for its rctl rules).
	PropLimits = PropPrefix + "limits"
	// PropStandbySince is set only while the state is standby; a value
	// left from an earlier standby is ignored in any other state.
	PropStandbySince = PropPrefix + "standby_since"
	// PropTemplateSnapshot is the template snapshot the release was
	// cloned from (the part after '@'). Releases made before it existed
	// have none and count as cloned from "base".
	PropTemplateSnapshot = PropPrefix + "template_snapshot"
)
