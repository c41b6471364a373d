package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateLimitUnits: `jailkeeper validate` checks the unit of every
// limit, and each problem names the file, the line, the field and what a
// right value looks like; right ones, in any of the accepted spellings,
// pass.
func TestValidateLimitUnits(t *testing.T) {
	const head = "service: hello\nhostnames: [hello.example.com]\nsha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n" +
		"artifact: {url: https://ci.example.com/hello.tar.gz, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n" +
		"port: 8080\nlimits:\n"
	for _, tc := range []struct {
		name, limit string
		want        string // "" when valid
	}{
		{"sizes with units", "  memory: 512M\n  disk: 5GiB\n", ""},
		{"lowercase and B", "  memory: 512mb\n  disk: 10G\n", ""},
		{"bytes", "  memory: 536870912\n", ""},
		{"counts", "  pcpu: 250\n  maxproc: 200\n  openfiles: 4096\n", ""},
		{"memory with a space", "  memory: 512 MB\n", `:7: limits.memory: must be a size such as 512M or 10G, got "512 MB"`},
		{"memory fraction", "  memory: 1.5G\n", `:7: limits.memory: must be a size such as 512M or 10G, got "1.5G"`},
		{"iB and B suffixes", "  memory: 512MiB\n  disk: 2TB\n  pcpu: 5\n", ""},
		{"memory without a unit", "  memory: 512\n", ":7: limits.memory: must be at least 1M, got 512 bytes; write a unit, such as 512M"},
		{"disk unknown suffix", "  disk: 5X\n", `:7: limits.disk: must be a size such as 512M or 10G, got "5X"`},
		{"disk too large", "  disk: 16E\n", ":7: limits.disk: "},
		{"pcpu percent sign", "  pcpu: 50%\n", ":7: limits.pcpu: must be an integer"},
		{"pcpu above 1024 cores", "  pcpu: 200000\n", ":7: limits.pcpu: must be between 1 and 102400 percent of one CPU core"},
		{"maxproc with a word", "  maxproc: 200 procs\n", ":7: limits.maxproc: must be an integer"},
		{"maxproc above PID_MAX", "  maxproc: 100000\n", ":7: limits.maxproc: must be between 1 and 99999 processes"},
		{"openfiles zero", "  openfiles: 0\n", ":7: limits.openfiles: must not be 0; leave it out for no limit"},
		{"openfiles a size", "  openfiles: 4K\n", ":7: limits.openfiles: must be an integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "hello.yaml")
			if err := os.WriteFile(file, []byte(head+tc.limit), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCapture(t, "validate", dir)
			if tc.want == "" {
				if code != 0 || stderr != "" {
					t.Errorf("exit %d, stderr:\n%s", code, stderr)
				}
				return
			}
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
			}
			if !strings.Contains(stderr, file+tc.want) {
				t.Errorf("stderr lacks %q:\n%s", file+tc.want, stderr)
			}
		})
	}
}
