// Package artifact provides release artifacts: it downloads them over http,
// https or file URLs with a size and a time limit, verifies their sha256
// before anything else sees them, caches them by that sum, and installs them
// into a release root, extracting a gzip'd tarball safely.
//
// A file URL is read only from below the one directory the agent's operator
// named (Options.FileRoot), never through a symbolic link leading out of it,
// and no error ever tells the actual sha256 of what was read: the deploy
// repo's author must learn nothing about the host's files.
//
// Nothing unverified ever leaves a Store: a download lands in a temporary
// file next to the cache and is renamed to its sum only after the sum
// matched. Install refuses tarball entries that would write outside the root
// or leave a link that points outside it, and never changes the mode or owner
// of a directory it did not create. A tarball is bounded in entries, path
// depth and expanded size, and costs time linear in its size: each
// directory is checked once, not once per entry below it.
//
// The package returns errors and does not log.
package artifact
