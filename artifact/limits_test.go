package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// deepTarGz writes n files, each at depth (depth-1 directories and the
// file), all in one chain of directories, as the attack in issue 9 did.
func deepTarGz(t testing.TB, n, depth int) []byte {
	t.Helper()
	return tarGz(t, deepEntries(n, depth, false)...)
}

// deepEntries returns n files at depth, in one chain of directories or,
// when chains is set, each in a chain of its own (every entry makes
// depth-1 directories).
func deepEntries(n, depth int, chains bool) []ent {
	dir := strings.Repeat("d/", depth-1)
	var entries []ent
	for i := range n {
		name := dir + fmt.Sprintf("f%d", i)
		if chains {
			name = fmt.Sprintf("c%d/", i) + strings.Repeat("d/", depth-2) + "f"
		}
		entries = append(entries, file(name, "x", 0o644))
	}
	return entries
}

// setLimit sets a package limit for one test.
func setLimit[T any](t testing.TB, p *T, v T) {
	t.Helper()
	old := *p
	*p = v
	t.Cleanup(func() { *p = old })
}

// TestExtractLinear: the root resolves a number of path components
// proportional to the entries' own path lengths, never to the square of
// the depth per entry (issue 9: 300 entries at depth 500 took 114 s,
// because every entry rechecked every ancestor through the root).
func TestExtractLinear(t *testing.T) {
	setLimit(t, &maxDepth, 1000)
	for _, tc := range []struct {
		n, depth int
		chains   bool
	}{{50, 100, false}, {50, 400, false}, {400, 50, false}, {20, 200, true}} {
		t.Run(fmt.Sprintf("%dx%d chains=%v", tc.n, tc.depth, tc.chains), func(t *testing.T) {
			s := newSandbox(t)
			r, err := os.OpenRoot(s.root)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			zr, err := gzip.NewReader(bytes.NewReader(tarGz(t, deepEntries(tc.n, tc.depth, tc.chains)...)))
			if err != nil {
				t.Fatal(err)
			}
			x := newExtractor(t.Context(), r)
			if err := x.entries(tar.NewReader(zr)); err != nil {
				t.Fatal(err)
			}
			// Each entry's own operations walk its path a few times, and
			// each directory is checked and made once.
			input := int64(tc.n * tc.depth)
			t.Logf("%d path components resolved for %d in the input", x.walked, input)
			if limit := 4 * input; x.walked > limit {
				t.Errorf("%d entries at depth %d: the root resolved %d path components, want at most %d (4 per component of input)",
					tc.n, tc.depth, x.walked, limit)
			}
		})
	}
}

func TestInstallLimits(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T)
		tarball func(t *testing.T) []byte
		mention string
	}{
		{"depth", func(t *testing.T) { setLimit(t, &maxDepth, 10) },
			func(t *testing.T) []byte { return deepTarGz(t, 1, 11) }, "deeper than 10"},
		{"depth at the limit is fine, one more is not", func(t *testing.T) { setLimit(t, &maxDepth, 10) },
			func(t *testing.T) []byte {
				return tarGz(t, file(strings.Repeat("d/", 9)+"ok", "x", 0o644), symlink(strings.Repeat("e/", 10)+"l", "x"))
			}, "deeper than 10"},
		{"default depth", func(t *testing.T) {},
			func(t *testing.T) []byte { return deepTarGz(t, 3, 500) }, "deeper than 128"},
		{"entries", func(t *testing.T) { setLimit(t, &maxEntries, 5) },
			func(t *testing.T) []byte {
				return tarGz(t, file("a", "", 0o644), file("b", "", 0o644), dir("c/", 0o755), symlink("d", "a"), hardlink("e", "a"), file("f", "", 0o644))
			}, "more than 5 entries"},
		{"directories made for an entry count", func(t *testing.T) { setLimit(t, &maxEntries, 5) },
			func(t *testing.T) []byte { return tarGz(t, file("a/b/c/d/e/f", "", 0o644)) }, "more than 5 entries"},
		{"size", func(t *testing.T) { setLimit(t, &maxExtract, 100) },
			func(t *testing.T) []byte {
				return tarGz(t, file("a", strings.Repeat("a", 60), 0o644), file("b", strings.Repeat("b", 60), 0o644))
			}, "expands beyond 100 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			s := newSandbox(t)
			src := writeSrc(t, t.TempDir(), "a.tar.gz", tt.tarball(t))
			err := Install(t.Context(), src, s.root, "")
			// ErrUnsafe: the reconciler stalls the spec (needs a new
			// commit) instead of retrying a hopeless extraction.
			if !errors.Is(err, ErrUnsafe) || !errors.Is(err, ErrLimit) {
				t.Fatalf("Install = %v, want ErrUnsafe and ErrLimit", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not say %q", err, tt.mention)
			}
			s.checkContained(t)
		})
	}
}

// BenchmarkExtractDeep shows the cost of extraction: linear in the entries
// at one depth, and linear in the depth for a number of entries.
func BenchmarkExtractDeep(b *testing.B) {
	setLimit(b, &maxDepth, 1000)
	for _, tc := range []struct{ n, depth int }{
		{300, 100}, {300, 200}, {300, 400},
		{1000, 20}, {2000, 20}, {4000, 20},
	} {
		b.Run(fmt.Sprintf("entries=%d/depth=%d", tc.n, tc.depth), func(b *testing.B) {
			src := writeSrc(b, b.TempDir(), "a.tar.gz", deepTarGz(b, tc.n, tc.depth))
			for b.Loop() {
				b.StopTimer()
				s := newSandbox(b)
				b.StartTimer()
				if err := Install(b.Context(), src, s.root, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestInstallStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"tarball", deepTarGz(t, 10, 3)},
		{"executable", []byte("#!/bin/sh\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			src := writeSrc(t, t.TempDir(), "a", tc.src)
			if err := Install(ctx, src, s.root, "/bin/app"); !errors.Is(err, context.Canceled) {
				t.Errorf("Install with a done context = %v, want context.Canceled", err)
			}
		})
	}
}
