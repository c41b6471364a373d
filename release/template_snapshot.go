package release

import "time"

// TemplateSnapshot is the name (the part after '@') of the snapshot that
// `jailkeeper template update` takes of a template it patched: the UTC
// time to the second in DataSnapshotTime's layout, 20261129T150405Z.
// Releases clone a template's newest snapshot by createtxg, not by name,
// so this name orders nothing; it says when the patch was made.
func TemplateSnapshot(t time.Time) string { return t.UTC().Format(DataSnapshotTime) }
