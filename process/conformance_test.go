package process_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/release/runtimetest"
	"github.com/jailkeeper/jailkeeper/zfs"
	"github.com/jailkeeper/jailkeeper/zfs/zfstest"
)

// The process runtime passes the runtime conformance suite in copy mode
// and in ZFS mode (zfs-fuse).

func TestConformanceProcessCopy(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) *runtimetest.Harness {
		return processHarness(t, process.Config{Root: filepath.Join(t.TempDir(), "releases"), Pool: randomPool()})
	})
}

func TestConformanceProcessZFS(t *testing.T) {
	pool := zfstest.Pool(t) // PATH for every subtest: none may run in parallel
	n := 0
	runtimetest.Run(t, func(t *testing.T) *runtimetest.Harness {
		n++
		parent := fmt.Sprintf("%s/c%d", pool, n)
		zfsTemplate(t, parent, "default", "motd\n")
		h := processHarness(t, process.Config{Root: filepath.Join(t.TempDir(), "releases"), Pool: randomPool(),
			Dataset: parent, DestroyRetries: 3})
		base := h.Residue
		h.Residue = func(t *testing.T) []string {
			out := base(t)
			ds, err := testZFS().Inventory(context.Background(), parent+"/releases")
			if err != nil && !errors.Is(err, zfs.ErrNotFound) {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Name != parent+"/releases" {
					out = append(out, "dataset "+d.Name)
				}
			}
			return out
		}
		h.Busy = func(t *testing.T, name string) func() { return zfstest.Busy(t, parent+"/releases/"+name) }
		return h
	})
}

// processHarness runs the process runtime of cfg (Root and Pool set) on
// examples/hello; whatever a subtest leaves running is destroyed when it
// ends.
func processHarness(t *testing.T, cfg process.Config) *runtimetest.Harness {
	t.Helper()
	p := newProcess(t, cfg)
	t.Cleanup(func() {
		rels, _ := p.List(context.Background())
		for _, r := range rels {
			if err := p.Destroy(context.Background(), r.Name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return &runtimetest.Harness{
		Runtime: p,
		Restart: func(t *testing.T) runtimetest.Runtime { return newProcess(t, cfg) },
		Spec:    func(t *testing.T) release.Spec { return helloSpec(t, nil) },
		Up: func(t *testing.T, r release.Release) bool {
			c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		},
		Hold: func(t *testing.T, addr netip.Addr, port int) {
			hold(t, net.JoinHostPort(addr.String(), strconv.Itoa(port)))
		},
		Residue: func(t *testing.T) []string {
			entries, err := os.ReadDir(cfg.Root)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range entries {
				out = append(out, "dir "+e.Name())
			}
			return out
		},
	}
}
