package gitsource

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// configFiles writes the files a Config refers to.
type configFiles struct {
	key, encKey, knownHosts, token, emptyToken, keyring, binKeyring, garbage string
}

func writeConfigFiles(t *testing.T) configFiles {
	t.Helper()
	dir := t.TempDir()
	put := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	entity, err := openpgp.NewEntity("Test", "", "test@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var bin strings.Builder
	if err := entity.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	armored, err := armorKeyring([]byte(bin.String()))
	if err != nil {
		t.Fatal(err)
	}
	return configFiles{
		key:        put("id_ed25519", pem.EncodeToMemory(block)),
		encKey:     put("id_enc", pem.EncodeToMemory(enc)),
		knownHosts: put("known_hosts", []byte("git.example.org "+string(ssh.MarshalAuthorizedKey(sshPub)))),
		token:      put("token", []byte("  s3cret-token\n")),
		emptyToken: put("empty", []byte(" \n")),
		keyring:    put("keyring.asc", []byte(armored)),
		binKeyring: put("keyring.gpg", []byte(bin.String())),
		garbage:    put("garbage", []byte("this is not a key\n")),
	}
}

func TestNewValid(t *testing.T) {
	cf := writeConfigFiles(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		// wantURL is the remote as stored in the clone.
		wantURL, wantBranch, wantPath string
	}{
		{"ssh", Config{URL: "ssh://git@git.example.org/ops/deploy.git", SSHKey: cf.key, KnownHosts: cf.knownHosts},
			"ssh://git@git.example.org/ops/deploy.git", "main", "services"},
		{"scp-like", Config{URL: "git@git.example.org:ops/deploy.git", SSHKey: cf.key, KnownHosts: cf.knownHosts, Branch: "prod/web"},
			"ssh://git@git.example.org/ops/deploy.git", "prod/web", "services"},
		{"ssh default user", Config{URL: "ssh://git.example.org:2222/deploy.git", SSHKey: cf.key, KnownHosts: cf.knownHosts},
			"ssh://git@git.example.org:2222/deploy.git", "main", "services"},
		{"https token", Config{URL: "https://git.example.org/ops/deploy.git", TokenFile: cf.token, Path: "./hosts/web1/"},
			"https://git.example.org/ops/deploy.git", "main", "hosts/web1"},
		{"https anonymous", Config{URL: "https://git.example.org/ops/deploy.git", Path: "."},
			"https://git.example.org/ops/deploy.git", "main", "."},
		{"http token loopback", Config{URL: "http://127.0.0.1:3000/deploy.git", TokenFile: cf.token},
			"http://127.0.0.1:3000/deploy.git", "main", "services"},
		{"file armored keyring", Config{URL: "file:///srv/git/deploy.git", VerifyKeyring: cf.keyring},
			"file:///srv/git/deploy.git", "main", "services"},
		{"local binary keyring", Config{URL: "/srv/git/deploy.git", VerifyKeyring: cf.binKeyring},
			"file:///srv/git/deploy.git", "main", "services"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Dir = dir
			s, err := New(tt.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got := []string{s.cfg.endpoint.String(), s.cfg.Branch, s.cfg.Path}
			if diff := cmp.Diff([]string{tt.wantURL, tt.wantBranch, tt.wantPath}, got); diff != "" {
				t.Errorf("url, branch, path (-want +got):\n%s", diff)
			}
			if s.cfg.Timeout != DefaultTimeout {
				t.Errorf("Timeout = %v, want %v", s.cfg.Timeout, DefaultTimeout)
			}
			if strings.Contains(tt.name, "keyring") && !strings.Contains(s.cfg.keyring, "BEGIN PGP PUBLIC KEY BLOCK") {
				t.Errorf("keyring not loaded: %q", s.cfg.keyring)
			}
		})
	}
}

func TestNewInvalid(t *testing.T) {
	cf := writeConfigFiles(t)
	dir := t.TempDir()
	const sshURL = "ssh://git@git.example.org/deploy.git"
	const httpsURL = "https://git.example.org/deploy.git"
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error, field names first
	}{
		{"no url", Config{Dir: dir}, []string{"repo.url: required"}},
		{"git scheme", Config{URL: "git://git.example.org/deploy.git", Dir: dir}, []string{"repo.url: scheme git://"}},
		{"no dir", Config{URL: httpsURL}, []string{"repo dir: required"}},
		{"everything at once", Config{Branch: "bad..name", Path: "../up", Timeout: -time.Second},
			[]string{"repo.branch:", "repo.path:", "repo dir: required", "repo.timeout:", "repo.url: required"}},
		{"branch", Config{URL: httpsURL, Dir: dir, Branch: "feature branch"}, []string{`repo.branch: "feature branch"`}},
		{"absolute path", Config{URL: httpsURL, Dir: dir, Path: "/services"}, []string{"repo.path:", "relative"}},
		{"path escapes", Config{URL: httpsURL, Dir: dir, Path: "services/../../etc"}, []string{"repo.path:", "inside the repo"}},
		{"ssh without key", Config{URL: sshURL, Dir: dir, KnownHosts: cf.knownHosts}, []string{"repo.ssh_key: required"}},
		{"ssh without known_hosts", Config{URL: sshURL, Dir: dir, SSHKey: cf.key},
			[]string{"repo.known_hosts: required", "no trust on first use"}},
		{"ssh key missing", Config{URL: sshURL, Dir: dir, SSHKey: "/nonexistent/id", KnownHosts: cf.knownHosts},
			[]string{"repo.ssh_key:", "/nonexistent/id"}},
		{"ssh key garbage", Config{URL: sshURL, Dir: dir, SSHKey: cf.garbage, KnownHosts: cf.knownHosts},
			[]string{"repo.ssh_key:", cf.garbage}},
		{"ssh key encrypted", Config{URL: sshURL, Dir: dir, SSHKey: cf.encKey, KnownHosts: cf.knownHosts},
			[]string{"repo.ssh_key:", "passphrase"}},
		{"known_hosts garbage", Config{URL: sshURL, Dir: dir, SSHKey: cf.key, KnownHosts: cf.garbage},
			[]string{"repo.known_hosts:"}},
		{"known_hosts missing", Config{URL: sshURL, Dir: dir, SSHKey: cf.key, KnownHosts: "/nonexistent/kh"},
			[]string{"repo.known_hosts:", "/nonexistent/kh"}},
		{"ssh settings on https", Config{URL: httpsURL, Dir: dir, SSHKey: cf.key, KnownHosts: cf.knownHosts},
			[]string{"repo.ssh_key: set, but", "repo.known_hosts: set, but"}},
		{"token on ssh", Config{URL: sshURL, Dir: dir, SSHKey: cf.key, KnownHosts: cf.knownHosts, TokenFile: cf.token},
			[]string{"repo.token_file: set, but"}},
		{"token on file", Config{URL: "/srv/git/deploy.git", Dir: dir, TokenFile: cf.token},
			[]string{"repo.token_file: set, but"}},
		{"token over plain http", Config{URL: "http://git.example.org/deploy.git", Dir: dir, TokenFile: cf.token},
			[]string{"repo.token_file:", "plain http", "git.example.org"}},
		{"token empty", Config{URL: httpsURL, Dir: dir, TokenFile: cf.emptyToken}, []string{"repo.token_file:", "empty"}},
		{"token missing", Config{URL: httpsURL, Dir: dir, TokenFile: "/nonexistent/token"},
			[]string{"repo.token_file:", "/nonexistent/token"}},
		{"keyring missing", Config{URL: httpsURL, Dir: dir, VerifyKeyring: "/nonexistent/keyring"},
			[]string{"repo.verify_keyring:", "/nonexistent/keyring"}},
		{"keyring garbage", Config{URL: httpsURL, Dir: dir, VerifyKeyring: cf.garbage},
			[]string{"repo.verify_keyring:", cf.garbage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New succeeded, want an error naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestNewNoIO: New neither creates Dir nor touches the network.
func TestNewNoIO(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "repo")
	if _, err := New(Config{URL: "https://127.0.0.1:1/deploy.git", Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("New created %s (stat: %v)", dir, err)
	}
}
