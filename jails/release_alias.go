package jails

import "github.com/jailkeeper/jailkeeper/release"

// Transitional aliases while the runtimes move to their own packages
// (issue "Structure"); new code uses package release directly.
type (
	Release = release.Release
	State   = release.State
	Status  = release.Status
	Spec    = release.Spec
)

const (
	StateCreating = release.StateCreating
	StateReady    = release.StateReady
	StateLive     = release.StateLive
	StateRetired  = release.StateRetired
	StateFailed   = release.StateFailed
)

var (
	ValidName     = release.ValidName
	ValidTemplate = release.ValidTemplate
	ValidDataset  = release.ValidDataset
)
