// Package testenv lets a test say what it needs from the machine: a test that
// needs something missing fails in CI (CI=true) and skips elsewhere, with the
// reason.
package testenv
