// Package atomicfile replaces files so that a reader (or a crash) sees
// either the old content or the new, never half of it: the data goes to a
// temporary file in the same directory, is synced, and is renamed over the
// target. rename(2) within one file system is atomic.
//
// The temporary file is named .tmp-<base>-<random>: a leading dot and no
// suffix of the target, so no glob such as *.conf ever matches it.
package atomicfile
