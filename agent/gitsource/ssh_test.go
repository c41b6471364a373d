package gitsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is Debian's OpenSSH sshd on 127.0.0.1, serving git over ssh the
// way a bare-bones git host does: the client runs git-upload-pack through
// the login shell.
type sshServer struct {
	addr    string // 127.0.0.1:port
	hostKey ssh.PublicKey
	user    string
	// clientKey is authorized; otherKey is not.
	clientKey, otherKey string
	log                 *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sshKeygen makes an unprotected key pair and returns the private key path.
func sshKeygen(t testing.TB, keygen, dir, name, typ string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	out, err := exec.Command(keygen, "-q", "-t", typ, "-N", "", "-C", name, "-f", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", name, err, out)
	}
	return p
}

func readPublicKey(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return k
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSSHD runs sshd -D -e with its own host keys and config. It needs
// root: sshd drops privileges into /run/sshd and logs users in.
func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	testenv.Root(t)
	const sshd = "/usr/sbin/sshd" // sshd must be started by absolute path
	if _, err := os.Stat(sshd); err != nil {
		testenv.Need(t, "%s: %v (Debian package openssh-server)", sshd, err)
	}
	keygen := testenv.Command(t, "ssh-keygen")
	testenv.Command(t, "git-upload-pack")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// The privilege separation directory; Debian's init script makes it.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	hostEd := sshKeygen(t, keygen, dir, "ssh_host_ed25519_key", "ed25519")
	hostECDSA := sshKeygen(t, keygen, dir, "ssh_host_ecdsa_key", "ecdsa")
	srv := &sshServer{
		user:      u.Username,
		hostKey:   readPublicKey(t, hostEd+".pub"),
		clientKey: sshKeygen(t, keygen, dir, "client", "ed25519"),
		otherKey:  sshKeygen(t, keygen, dir, "stranger", "ed25519"),
		log:       &lockedBuffer{},
	}
	authorized, err := os.ReadFile(srv.clientKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authFile, authorized, 0o600); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	srv.addr = fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(dir, "sshd_config")
	// sshd_config(5). The ecdsa host key comes before ed25519 on purpose:
	// the Go client prefers ecdsa unless told which algorithm known_hosts
	// pins.
	config := strings.Join([]string{
		"ListenAddress " + srv.addr,
		"HostKey " + hostECDSA,
		"HostKey " + hostEd,
		"AuthorizedKeysFile " + authFile,
		"PidFile none",
		"StrictModes no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UseDNS no",
		"LogLevel VERBOSE",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sshd, "-t", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}

	cmd := exec.Command(sshd, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = srv.log, srv.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", srv.log.String())
		}
	})
	// Wait until it listens (or dies), bounded so a broken sshd fails the
	// test instead of hanging it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", srv.addr)
		if err == nil {
			c.Close()
			return srv
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", srv.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %s:\n%s", srv.addr, srv.log.String())
		}
	}
}

// knownHosts writes a known_hosts file with lines for (host:port, key).
func knownHosts(t testing.TB, file string, entries map[string]ssh.PublicKey) string {
	t.Helper()
	var b strings.Builder
	for addr, key := range entries {
		b.WriteString(xknownhosts.Line([]string{xknownhosts.Normalize(addr)}, key) + "\n")
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func otherHostKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	keygen := testenv.Command(t, "ssh-keygen")
	return readPublicKey(t, sshKeygen(t, keygen, t.TempDir(), "impostor", "ed25519")+".pub")
}

// TestPollSSH polls through a real sshd with a pinned known_hosts: a good
// host key is accepted; an unknown or changed one is refused with an error
// that says which, and the last good commit stays in effect.
func TestPollSSH(t *testing.T) {
	srv := startSSHD(t)
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.commit("hello v1")
	f.push(false)
	url := fmt.Sprintf("ssh://%s@%s%s", srv.user, srv.addr, f.bare)
	v1 := map[string]string{"hello.yaml": helloV1}
	impostor := otherHostKey(t)

	t.Run("pinned host key", func(t *testing.T) {
		kh := knownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), map[string]ssh.PublicKey{srv.addr: srv.hostKey})
		s := newSource(t, Config{URL: url, SSHKey: srv.clientKey, KnownHosts: kh})
		checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true, files: v1,
			stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
		checkPoll(t, s, want{rev: c1, time: commitTime(0), files: v1,
			stats: Stats{Polls: 2, Lists: 2, Fetches: 1}})
	})

	t.Run("unknown host", func(t *testing.T) {
		// known_hosts lists another host only.
		kh := knownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), map[string]ssh.PublicKey{"git.example.org:22": srv.hostKey})
		s := newSource(t, Config{URL: url, SSHKey: srv.clientKey, KnownHosts: kh})
		err := pollErr(t, s, ErrHostKey, "unknown host")
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("error %v does not wrap ErrUnreachable", err)
		}
	})

	t.Run("changed host key", func(t *testing.T) {
		kh := knownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), map[string]ssh.PublicKey{srv.addr: impostor})
		s := newSource(t, Config{URL: url, SSHKey: srv.clientKey, KnownHosts: kh})
		err := pollErr(t, s, ErrHostKey, "host key changed")
		if !strings.Contains(err.Error(), ssh.FingerprintSHA256(impostor)) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(srv.hostKey)) {
			t.Errorf("error %v does not name both fingerprints", err)
		}
	})

	t.Run("host key changes after a good poll", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		knownHosts(t, kh, map[string]ssh.PublicKey{srv.addr: srv.hostKey})
		s := newSource(t, Config{URL: url, SSHKey: srv.clientKey, KnownHosts: kh})
		checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true, files: v1,
			stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
		knownHosts(t, kh, map[string]ssh.PublicKey{srv.addr: impostor})
		checkPoll(t, s, want{rev: c1, time: commitTime(0), files: v1, err: ErrHostKey,
			stats: Stats{Polls: 2, Lists: 1, Fetches: 1}})
	})

	t.Run("client key not authorized", func(t *testing.T) {
		kh := knownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), map[string]ssh.PublicKey{srv.addr: srv.hostKey})
		s := newSource(t, Config{URL: url, SSHKey: srv.otherKey, KnownHosts: kh})
		err := pollErr(t, s, ErrUnreachable, "unable to authenticate")
		if errors.Is(err, ErrHostKey) {
			t.Errorf("error %v blames the host key", err)
		}
	})

	t.Run("nothing listening", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		kh := knownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), map[string]ssh.PublicKey{addr: srv.hostKey})
		s := newSource(t, Config{URL: fmt.Sprintf("ssh://%s@%s%s", srv.user, addr, f.bare), SSHKey: srv.clientKey, KnownHosts: kh})
		pollErr(t, s, ErrUnreachable, "connection refused")
	})
}

// pollErr polls a Source that has no good commit yet and expects an error
// wrapping target whose text contains text, and the zero Snapshot.
func pollErr(t *testing.T, s *Source, target error, text string) error {
	t.Helper()
	snap, err := s.Poll(context.Background())
	if !errors.Is(err, target) || !strings.Contains(err.Error(), text) {
		t.Fatalf("Poll error = %v, want one wrapping %q and saying %q", err, target, text)
	}
	if snap.Revision != "" || snap.FS != nil {
		t.Errorf("Poll returned revision %q, want the zero Snapshot", snap.Revision)
	}
	return err
}
