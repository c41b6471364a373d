package jailstest

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
)

// Host is the fake FreeBSD host. Its zero value is not usable: call New.
// Safe for concurrent use: commands run one at a time, as if the kernel
// serialised them.
type Host struct {
	dir string
	now func() time.Time

	mu     sync.Mutex
	ifaces []*iface
	jails  []*jail
	jid    int
	// dyingPolls: see SetDying.
	dyingPolls int
	mounts     []Mount // other than mounted datasets and jails' devfs
	ds         map[string]*dataset
	txg        uint64
	fault      FaultFunc
	calls      []Call
	rctl       rctlState // rctl.go
}

// Mount is a file system mounted on the host that is neither a dataset
// nor a jail's devfs: what a test adds with AddMount (a nullfs, say).
type Mount struct {
	Device, Path, FSType string
}

// Call is one command the Host ran, with how it ended.
type Call struct {
	Argv   []string
	Exit   int
	Stderr string
}

// FaultFunc decides, before a command runs, whether it fails. It returns
// nil to let the command run normally.
type FaultFunc func(argv []string) *Fault

// Fault is an injected failure. With After false the command fails
// without changing anything; with After true it runs, changes the host,
// and then reports the failure, as when the agent is killed or loses the
// command's answer after the system acted.
type Fault struct {
	After  bool
	Exit   int    // default 1
	Stderr string // what the command writes to stderr
}

// New returns a host with no interfaces, jails, mounts or pools. dir
// (a t.TempDir()) holds every file the host keeps; mountpoints must be
// below it. now is the clock for dataset creation times (nil: time.Now).
func New(dir string, now func() time.Time) *Host {
	if now == nil {
		now = time.Now
	}
	return &Host{dir: filepath.Clean(dir), now: now, ds: map[string]*dataset{}}
}

var _ command.Runner = (*Host)(nil)

// Dir is the directory given to New.
func (h *Host) Dir() string { return h.dir }

// SetFault installs f (nil removes it). It is consulted for every later
// command.
func (h *Host) SetFault(f FaultFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fault = f
}

// FailOnce returns a FaultFunc that fails the first command whose argv
// starts with prefix, with fault, and no other.
func FailOnce(prefix []string, fault Fault) FaultFunc {
	var once sync.Once
	return func(argv []string) *Fault {
		if len(argv) < len(prefix) || !slices.Equal(argv[:len(prefix)], prefix) {
			return nil
		}
		var f *Fault
		once.Do(func() { f = &fault })
		return f
	}
}

// Calls returns the commands run so far, in order.
func (h *Host) Calls() []Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// Transcript renders the commands run so far, one per line, quoted as a
// shell would need them; a failed command is followed by "  # exit N",
// as commandtest.Replay's transcript.
func (h *Host) Transcript() string {
	var b strings.Builder
	for _, c := range h.Calls() {
		b.WriteString(command.Quote(c.Argv))
		if c.Exit != 0 {
			fmt.Fprintf(&b, "  # exit %d", c.Exit)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// result is what a command printed and how it exited.
type result struct {
	stdout string
	stderr string
	exit   int
}

func ok(stdout string) result { return result{stdout: stdout} }

// fail is a failure with exit status 1, the status of every failure in
// FACTS.md §3 and errors.md.
func fail(stderr string) result { return result{stderr: stderr, exit: 1} }

// unsupported is a command form the fake does not model (see the package
// doc): never a real text, exit 2.
func unsupported(argv []string, why string) result {
	return result{stderr: fmt.Sprintf("jailstest: %s: %s (the fake does not model this)\n", command.Quote(argv), why), exit: 2}
}

// Run implements command.Runner. stdin is read and dropped.
func (h *Host) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	if stdin != nil {
		_, _ = io.Copy(io.Discard, stdin)
	}
	argv = slices.Clone(argv)
	if err := ctx.Err(); err != nil {
		return nil, &command.Error{Argv: argv, Exit: -1, Err: err}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var flt *Fault
	if h.fault != nil {
		flt = h.fault(argv)
	}
	var res result
	if flt == nil || flt.After {
		res = h.dispatch(argv)
	}
	if flt != nil {
		res = result{stderr: flt.Stderr, exit: flt.Exit}
		if res.exit == 0 {
			res.exit = 1
		}
	}
	h.calls = append(h.calls, Call{Argv: argv, Exit: res.exit, Stderr: res.stderr})
	if res.exit != 0 {
		return []byte(res.stdout), &command.Error{Argv: argv, Exit: res.exit, Stderr: res.stderr,
			Err: fmt.Errorf("exit status %d", res.exit)}
	}
	return []byte(res.stdout), nil
}

func (h *Host) dispatch(argv []string) result {
	if len(argv) == 0 {
		return unsupported(argv, "empty argv")
	}
	prog := filepath.Base(argv[0]) // /sbin/ifconfig is ifconfig
	args := argv[1:]
	switch prog {
	case "jls":
		return h.jls(argv, args)
	case "jail":
		return h.jail(argv, args)
	case "ifconfig":
		return h.ifconfig(argv, args)
	case "mount":
		return h.mount(argv, args)
	case "umount":
		return h.umount(argv, args)
	case "zfs":
		return h.zfs(argv, args)
	case "rctl":
		return h.rctlCmd(argv, args)
	}
	return unsupported(argv, "unknown program")
}

// MustRun runs argv and fails the test when it fails; for setting up a
// host with the commands an operator would run.
func (h *Host) MustRun(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := h.Run(context.Background(), argv, nil)
	if err != nil {
		t.Fatalf("jailstest: %v", err)
	}
	return string(out)
}

// inside reports whether path is h.dir or below it: the only place the
// fake touches files.
func (h *Host) inside(path string) bool {
	path = filepath.Clean(path)
	return path == h.dir || strings.HasPrefix(path, h.dir+string(filepath.Separator))
}

// AddMount records a file system mounted at path (a nullfs a test
// simulates, say), listed by `mount -p` and removed by `umount`.
func (h *Host) AddMount(device, path, fstype string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mounts = append(h.mounts, Mount{Device: device, Path: filepath.Clean(path), FSType: fstype})
}

// AddInterface creates a cloned loopback interface (as `ifconfig lo1
// create` and rc.conf's cloned_interfaces do) with the given addresses.
func (h *Host) AddInterface(name string, addrs ...netip.Prefix) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ifc := h.iface(name)
	if ifc == nil {
		// lo0 is index 1 and a NIC 2, as on the host of
		// ifconfig-lo1-14.0.txt, whose lo1 has scopeid 0x3.
		ifc = &iface{name: name, index: len(h.ifaces) + 3}
		h.ifaces = append(h.ifaces, ifc)
	}
	ifc.addrs = append(ifc.addrs, addrs...)
}

// Addrs returns the IPv4 addresses of the interface, in insertion order.
func (h *Host) Addrs(name string) []netip.Prefix {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ifc := h.iface(name); ifc != nil {
		return slices.Clone(ifc.addrs)
	}
	return nil
}

// JailInfo is a jail as the host sees it.
type JailInfo struct {
	JID      int
	Name     string
	Hostname string
	Path     string
	Dying    bool
	IPv4     []netip.Addr
	CPUSetID int // jls -v's cpusetid; AddJail: 0 means JID+3
}

// AddJail puts a jail on the host as if started outside the runtime (by
// another tool, or by an agent that crashed before it recorded anything):
// with JID 0 it gets the next jid. Its addresses are not added to any
// interface: add them with AddInterface when the jail should own an alias.
func (h *Host) AddJail(j JailInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if j.JID == 0 {
		h.jid++
		j.JID = h.jid
	}
	h.jid = max(h.jid, j.JID)
	nj := &jail{jid: j.JID, name: j.Name, hostname: j.Hostname, path: j.Path, ip4: slices.Clone(j.IPv4), cpuset: j.CPUSetID}
	if j.Dying {
		nj.dying = math.MaxInt // dying for good: a jail stuck in DYING
	}
	h.jails = append(h.jails, nj)
}

// Jails returns every jail, dying ones included, by jid.
func (h *Host) Jails() []JailInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []JailInfo
	for _, j := range h.jails {
		out = append(out, JailInfo{JID: j.jid, Name: j.name, Hostname: j.hostname, Path: j.path, Dying: j.dying > 0,
			IPv4: slices.Clone(j.ip4), CPUSetID: j.cpusetid()})
	}
	return out
}

// Residue describes everything on the host that a release can leave
// behind, one sorted line per item: "jail NAME [DYING]", "alias IF ADDR",
// "dataset NAME", "snapshot NAME", "mount PATH (FSTYPE)", "rctl RULE", and "file PATH"
// for every file and directory below each dir given (a jail.conf.d, a log
// directory), relative to h.Dir().
func (h *Host) Residue(dirs ...string) []string {
	h.mu.Lock()
	var out []string
	for _, j := range h.jails {
		s := "jail " + j.name
		if j.dying > 0 {
			s += " DYING"
		}
		out = append(out, s)
	}
	for _, ifc := range h.ifaces {
		for _, a := range ifc.addrs {
			out = append(out, "alias "+ifc.name+" "+a.String())
		}
	}
	for name := range h.ds {
		if strings.Contains(name, "@") {
			out = append(out, "snapshot "+name)
		} else {
			out = append(out, "dataset "+name)
		}
	}
	for _, m := range h.allMounts() {
		if m.FSType != "zfs" {
			out = append(out, "mount "+m.Path+" ("+m.FSType+")")
		}
	}
	for _, rs := range h.rctl.rules {
		for _, r := range rs {
			out = append(out, "rctl "+r)
		}
	}
	h.mu.Unlock()
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && p != d {
				rel, _ := filepath.Rel(h.dir, p)
				out = append(out, "file "+rel)
			}
			return nil
		})
	}
	slices.Sort(out)
	return out
}
