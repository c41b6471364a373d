package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// TestPortSampleConfig: the config the FreeBSD port installs as
// jailkeeper.yaml.sample is one the agent accepts as it stands.
func TestPortSampleConfig(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(t), "packaging", "freebsd", "sysutils", "jailkeeper", "files", "jailkeeper.yaml.sample")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig("/usr/local/etc/jailkeeper/jailkeeper.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Runtime != "jail" || c.Jails.Interface != "lo1" || c.Caddy.Listen[0] != "fd/3" {
		t.Errorf("sample config decoded to runtime %q, interface %q, listen %q", c.Runtime, c.Jails.Interface, c.Caddy.Listen)
	}
	// Windows are commented out: a sample that holds deploys on weekdays
	// would surprise whoever copies it.
	if c.ControlSocket != DefaultControlSocket || len(c.Windows) != 0 {
		t.Errorf("sample config decoded to control_socket %q, windows %+v", c.ControlSocket, c.Windows)
	}
}
