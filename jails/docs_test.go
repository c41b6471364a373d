package jails_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// TestDocsRCScripts runs sh -n on the rc.d scripts docs/freebsd.md tells
// operators to install (the code blocks that start with #!/bin/sh).
func TestDocsRCScripts(t *testing.T) {
	sh := testenv.Command(t, "sh")
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "freebsd.md"))
	if err != nil {
		t.Fatal(err)
	}
	var scripts []string
	for _, block := range strings.Split(string(doc), "```sh\n")[1:] {
		body, _, ok := strings.Cut(block, "```")
		if ok && strings.HasPrefix(body, "#!/bin/sh\n") {
			scripts = append(scripts, body)
		}
	}
	if len(scripts) != 2 {
		t.Fatalf("found %d rc.d scripts in docs/freebsd.md, want 2 (jailkeeper_caddy, jailkeeper)", len(scripts))
	}
	for _, s := range scripts {
		p := filepath.Join(t.TempDir(), "rc")
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(sh, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n: %v\n%s\n%s", err, out, s)
		}
		name := strings.Fields(s[strings.Index(s, "PROVIDE:"):])[1]
		if !strings.Contains(s, "name="+name+"\n") || !strings.Contains(s, "rcvar="+name+"_enable\n") {
			t.Errorf("script %s: name or rcvar do not match PROVIDE", name)
		}
	}
}
