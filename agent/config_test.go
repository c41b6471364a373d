package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/manifest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jailkeeper.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	p := writeConfig(t, "repo: {url: file:///srv/deploy.git}\nruntime: process\n")
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ field, got, want string }{
		{"repo.branch", c.Repo.Branch, "main"},
		{"repo.path", c.Repo.Path, "services"},
		{"repo.poll", c.Repo.Poll, "@every 30s"},
		{"state_dir", c.StateDir, "/var/db/jailkeeper"},
		{"process.root", c.Process.Root, "/var/db/jailkeeper/releases"},
		{"process.pool", c.Process.Pool, "127.77.0.0/16"},
		{"process.dataset", c.Process.Dataset, ""},
		{"process.template_name", c.Process.TemplateName, "default"},
		{"jails.pool", c.Jails.Pool, "172.16.0.0/12"},
		{"jails.interface", c.Jails.Interface, "lo1"},
		{"caddy.admin", c.Caddy.Admin, "unix//var/run/caddy/admin.sock"},
		{"caddy.server", c.Caddy.Server, "jailkeeper"},
		{"caddy.upstream_dir", c.Caddy.UpstreamDir, "/var/db/jailkeeper/upstreams"},
		{"listen", c.Listen, "127.0.0.1:9180"},
		{"secrets", c.SecretsDir(), filepath.Join(filepath.Dir(p), "secrets")},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.field, tc.got, tc.want)
		}
	}
	if c.Parallel != 4 || c.Notify.Timeout != 5*time.Second {
		t.Errorf("parallel %d, notify.timeout %s", c.Parallel, c.Notify.Timeout)
	}
	if c.Host == "" {
		t.Error("host did not default to the hostname")
	}
	if c.Notify.Retries != 3 {
		t.Errorf("notify.retries = %d, want the default 3", c.Notify.Retries)
	}
	off, err := ParseConfig(p, []byte("repo: {url: file:///srv/deploy.git}\nnotify: {url: http://127.0.0.1:1/, retries: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if off.Notify.Retries != 0 {
		t.Errorf("explicit notify.retries: 0 became %d", off.Notify.Retries)
	}
}

func TestConfigProcessDataset(t *testing.T) {
	p := writeConfig(t, "repo: {url: x}\nruntime: process\nprocess: {dataset: tank/jailkeeper, template_name: base-1}\n")
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Process.Dataset != "tank/jailkeeper" || c.Process.TemplateName != "base-1" || c.Process.Template != "" {
		t.Errorf("process = %+v", c.Process)
	}
}

func TestConfigErrorsNameFileAndField(t *testing.T) {
	for _, tc := range []struct{ name, body, field string }{
		{"no repo url", "runtime: process\n", "repo.url"},
		{"unknown field", "repo: {url: x}\nruntme: process\n", "runtme"},
		{"unknown nested field", "repo: {url: x, brnch: main}\n", "brnch"},
		{"bad poll", "repo: {url: x, poll: \"every 5\"}\n", "repo.poll"},
		{"bad runtime", "repo: {url: x}\nruntime: docker\n", "runtime"},
		{"relative state dir", "repo: {url: x}\nstate_dir: var/db\n", "state_dir"},
		{"bad jails pool", "repo: {url: x}\njails: {pool: 172.16.0.0/33}\n", "jails.pool"},
		{"process pool not loopback", "repo: {url: x}\nprocess: {pool: 10.0.0.0/8}\n", "process.pool"},
		{"process dataset not a dataset", "repo: {url: x}\nprocess: {dataset: /tank/jk}\n", "process.dataset"},
		{"process dataset and template dir", "repo: {url: x}\nprocess: {dataset: tank/jk, template: /srv/t}\n", "process.template"},
		{"process template name", "repo: {url: x}\nprocess: {dataset: tank/jk, template_name: ../x}\n", "process.template_name"},
		{"bad listen", "repo: {url: x}\nlisten: localhost\n", "listen"},
		{"relative upstream dir", "repo: {url: x}\ncaddy: {upstream_dir: up}\n", "caddy.upstream_dir"},
		{"placeholder in upstream dir", "repo: {url: x}\ncaddy: {upstream_dir: \"/x/{env.HOME}\"}\n", "caddy.upstream_dir"},
		{"parallel too high", "repo: {url: x}\nparallel: 1000\n", "parallel"},
		{"bad notify url", "repo: {url: x}\nnotify: {url: ftp://x}\n", "notify.url"},
		{"wrong type", "repo: {url: x}\nparallel: many\n", "parallel"},
		{"not yaml", "repo: [\n", "jailkeeper.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			_, err := LoadConfig(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v is not ErrConfig", err)
			}
			for _, want := range []string{p, tc.field} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}

func TestNewBuildsBothRuntimes(t *testing.T) {
	dir := t.TempDir()
	for _, rt := range []string{"process", "jail"} {
		p := writeConfig(t, "repo: {url: file://"+dir+"/deploy.git}\nruntime: "+rt+"\nstate_dir: "+dir+"\ncaddy: {admin: 127.0.0.1:2019}\n")
		c, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		a, err := New(c, nil)
		if err != nil {
			t.Fatalf("runtime %s: %v", rt, err)
		}
		a.proxy.Close()
	}
}

// TestConfigPolicy: the operator's policy decodes with DESIGN's keys, is
// validated naming its fields, and is denied by default.
func TestConfigPolicy(t *testing.T) {
	p := writeConfig(t, "repo: {url: https://git.example.com/d.git}\npolicy: {allow: [raw_sockets], users: [www, root], artifact_hosts: [\"http://127.0.0.1:8081/\"], root_exec: true}\n")
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	want := manifest.Policy{Allow: []string{"raw_sockets"}, Users: []string{"www", "root"}, ArtifactHosts: []string{"http://127.0.0.1:8081/"}, RootExec: true}
	if diff := cmp.Diff(want, c.Policy); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	c, err = LoadConfig(writeConfig(t, "repo: {url: https://git.example.com/d.git}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(manifest.Policy{}, c.Policy); diff != "" {
		t.Errorf("default policy (-want +got):\n%s", diff)
	}
	for body, field := range map[string]string{
		"policy: {allow: [settimes]}":              "policy.allow[0]",
		"policy: {users: [Root]}":                  "policy.users[0]",
		"policy: {artifact_hosts: [\"ftp://x/\"]}": "policy.artifact_hosts[0]",
		"policy: {colour: blue}":                   "colour",
	} {
		_, err := LoadConfig(writeConfig(t, "repo: {url: https://git.example.com/d.git}\n"+body+"\n"))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want ErrConfig naming %s", body, err, field)
		}
	}
}

// jails.resolvers: IP addresses a jail can reach, never loopback (inside a
// jail 127.0.0.1 is the jail's own address).
func TestConfigJailsResolvers(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, "repo: {url: x}\njails: {resolvers: [172.16.0.1, \"2001:db8::53\", 192.0.2.53]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(c.Jails.Resolvers, " "), "172.16.0.1 2001:db8::53 192.0.2.53"; got != want {
		t.Errorf("resolvers %q, want %q", got, want)
	}
	for _, tc := range []struct{ resolvers, field, says string }{
		{"[127.0.0.1]", "jails.resolvers[0]", "loopback"},
		{"[192.0.2.53, \"::1\"]", "jails.resolvers[1]", "loopback"},
		{"[127.0.0.53]", "jails.resolvers[0]", "loopback"},
		{"[\"::ffff:127.0.0.1\"]", "jails.resolvers[0]", "loopback"},
		{"[0.0.0.0]", "jails.resolvers[0]", "unspecified"},
		{"[dns.example.com]", "jails.resolvers[0]", "not an IP address"},
		{"[192.0.2.53/32]", "jails.resolvers[0]", "not an IP address"},
		{"[\"fe80::1%lo1\"]", "jails.resolvers[0]", "zone"},
	} {
		t.Run(tc.resolvers, func(t *testing.T) {
			p := writeConfig(t, "repo: {url: x}\njails: {resolvers: "+tc.resolvers+"}\n")
			_, err := LoadConfig(p)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("LoadConfig = %v, want ErrConfig", err)
			}
			for _, want := range []string{p, tc.field, tc.says} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}
