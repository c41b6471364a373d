package jails_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// portFiles is where the port keeps its rc.d scripts (files/<name>.in).
const portFiles = "packaging/freebsd/sysutils/jailkeeper/files"

// portSubst does what the ports framework's SUB_LIST does to files/*.in
// for a default PREFIX (the same substitutions as packaging/freebsd/port-check.sh).
var portSubst = strings.NewReplacer(
	"%%PREFIX%%", "/usr/local",
	"%%LOCALBASE%%", "/usr/local",
	"%%ETCDIR%%", "/usr/local/etc/jailkeeper",
)

// TestDocsRCScripts checks the rc.d scripts docs/freebsd.md shows (the
// code blocks that start with #!/bin/sh): each is exactly the port's
// files/<name>.in after %%PREFIX%% substitution, so the port is the one
// source of truth and the docs cannot drift from what `make install`
// puts in place; and each passes sh -n.
func TestDocsRCScripts(t *testing.T) {
	sh := testenv.Command(t, "sh")
	root := testenv.RepoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "freebsd.md"))
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
	var names []string
	for _, s := range scripts {
		i := strings.Index(s, "PROVIDE:")
		if i < 0 {
			t.Errorf("an rc.d script in docs/freebsd.md has no PROVIDE:\n%s", s)
			continue
		}
		name := strings.Fields(s[i:])[1]
		names = append(names, name)
		in, err := os.ReadFile(filepath.Join(root, portFiles, name+".in"))
		if err != nil {
			t.Errorf("docs/freebsd.md shows rc.d/%s, which the port does not install: %v", name, err)
			continue
		}
		if diff := cmp.Diff(portSubst.Replace(string(in)), s); diff != "" {
			t.Errorf("docs/freebsd.md's rc.d/%s differs from %s/%s.in after substitution (-port +docs):\n%s", name, portFiles, name, diff)
		}
		p := filepath.Join(t.TempDir(), "rc")
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(sh, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n: %v\n%s\n%s", err, out, s)
		}
		if !strings.Contains(s, "name="+name+"\n") || !strings.Contains(s, "rcvar="+name+"_enable\n") {
			t.Errorf("script %s: name or rcvar do not match PROVIDE", name)
		}
	}
	if diff := cmp.Diff([]string{"jailkeeper_caddy", "jailkeeper", "jailkeeper_shutdown"}, names); diff != "" {
		t.Errorf("rc.d scripts in docs/freebsd.md (-want +got):\n%s", diff)
	}
}
