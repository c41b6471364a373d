package process_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
)

// hold listens on addr for the rest of the test, as a stray process of an
// earlier run or a stranger would.
func hold(t *testing.T, addr string) {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("hold %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
}

// A stray listener on the address and port the runtime would hand out next
// keeps that address from the release, which then starts and serves on
// another one.
func TestProcessSkipsHeldAddress(t *testing.T) {
	ctx := context.Background()
	pool := randomPool()
	p := newProcess(t, process.Config{Pool: pool})
	spec := helloSpec(t, nil)
	next := pool.Addr().Next().Next()
	hold(t, net.JoinHostPort(next.String(), strconv.Itoa(spec.Port)))

	r := create(t, p, spec)
	if r.IP == next {
		t.Fatalf("Create handed out %s, held by a stray listener on port %d", r.IP, spec.Port)
	}
	if err := p.Start(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	waitUp(t, p, r)
}

// A release whose app dies because its ADDR:port was taken after Create is
// explained as release.ErrAddressInUse, with the log's last lines; one whose
// app exits on its own is explained without it.
func TestProcessExitExplains(t *testing.T) {
	ctx := context.Background()
	p := newProcess(t, process.Config{Template: shellTemplate(t)})

	taken := shellSpec(`echo "listen tcp $ADDR: bind: address already in use"; exit 1`)
	r := create(t, p, taken)
	hold(t, r.Addr())
	if err := p.Start(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the app to exit", func() bool { return !running(t, p, r.Name) })
	err := p.Exit(ctx, r.Name)
	if !errors.Is(err, release.ErrAddressInUse) {
		t.Errorf("Exit of an app whose address was taken = %v, want release.ErrAddressInUse", err)
	}

	own := shellSpec("printf 'config: bad \\033[31mvalue\\033[0m\\n'; exit 3")
	r = create(t, p, own)
	if err := p.Start(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the app to exit", func() bool { return !running(t, p, r.Name) })
	err = p.Exit(ctx, r.Name)
	switch {
	case err == nil:
		t.Fatal("Exit of an app that exited = nil, want why")
	case errors.Is(err, release.ErrAddressInUse):
		t.Errorf("Exit = %v, want no release.ErrAddressInUse", err)
	case !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "config: bad"):
		t.Errorf("Exit = %q, want the exit status and the log's last line", err)
	case strings.ContainsAny(err.Error(), "\x1b\n"):
		t.Errorf("Exit = %q, want no control characters", err)
	}
}

// An executable still open for writing somewhere (a child forked while
// artifact.Install wrote it, golang/go#22315) makes exec fail with
// ETXTBSY: Start tries again, and one that lasts is release.ErrHostBusy,
// the host's fault.
func TestProcessStartBusyExecutable(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root})
	r := create(t, p, helloSpec(t, nil))
	bin := filepath.Join(root, r.Name, "root/usr/local/bin/hello")
	openWrite := func() *os.File {
		f, err := os.OpenFile(bin, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	w := openWrite()
	err := p.Start(ctx, r.Name)
	w.Close()
	if !errors.Is(err, release.ErrHostBusy) || !errors.Is(err, syscall.ETXTBSY) {
		t.Fatalf("Start with the executable open for writing = %v, want release.ErrHostBusy wrapping ETXTBSY", err)
	}

	// Closed while Start retries: it starts. (The retries wait 360ms in
	// all; the writer closes after the first.)
	w = openWrite()
	go func() { time.Sleep(30 * time.Millisecond); w.Close() }()
	if err := p.Start(ctx, r.Name); err != nil {
		t.Fatalf("Start once the writer closed: %v", err)
	}
	waitUp(t, p, r)
}

// When processes hold every address of the pool with the release's port
// (a listener on the wildcard address would), the pool is exhausted, and
// the error says why.
func TestProcessHeldAddressesExhaustPool(t *testing.T) {
	p := newProcess(t, process.Config{Pool: netip.MustParsePrefix("127.77.99.8/30")})
	spec := helloSpec(t, nil)
	for _, a := range []string{"127.77.99.10", "127.77.99.11"} {
		hold(t, net.JoinHostPort(a, strconv.Itoa(spec.Port)))
	}
	_, err := p.Create(context.Background(), spec)
	if !errors.Is(err, release.ErrPoolExhausted) || !strings.Contains(err.Error(), "2 addresses held by other processes") {
		t.Fatalf("Create = %v, want release.ErrPoolExhausted saying the addresses are held", err)
	}
}
