package crashpoint

import (
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
)

// EnvVar names the environment variable that arms a point in a child
// process: its value is the point's name.
const EnvVar = "JAILKEEPER_CRASH_AT"

// Point is one named place to crash at. Its zero value is not usable:
// call New.
type Point struct{ name string }

// armed is what a Hit compares its name with, and what it does on a match.
type armed struct {
	name   string
	action func(name string)
}

var (
	mu       sync.Mutex
	registry = map[string]bool{}

	envOnce sync.Once
	current atomic.Pointer[armed]
)

// New registers a point. It is meant for package-level variables; a name
// that is registered twice panics, so two sites never share a name.
func New(name string) *Point {
	mu.Lock()
	defer mu.Unlock()
	if name == "" || registry[name] {
		panic("crashpoint: duplicate or empty point " + name)
	}
	registry[name] = true
	return &Point{name: name}
}

// Name is the point's name.
func (p *Point) Name() string { return p.name }

// Hit crashes the process when the point is armed, and does nothing
// otherwise. Safe for concurrent use.
func (p *Point) Hit() {
	envOnce.Do(func() {
		if n := os.Getenv(EnvVar); n != "" {
			current.CompareAndSwap(nil, &armed{name: n, action: kill})
		}
	})
	if a := current.Load(); a != nil && a.name == p.name {
		a.action(p.name)
	}
}

// Points returns the names of every registered point, sorted.
func Points() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Arm makes the next Hits of the point called name run action instead of
// killing the process, until disarm is called; it overrides JAILKEEPER_CRASH_AT.
// For in-process tests; not safe to arm two points at once.
func Arm(name string, action func(name string)) (disarm func()) {
	envOnce.Do(func() {}) // the environment no longer matters
	current.Store(&armed{name: name, action: action})
	return func() { current.Store(nil) }
}

// Crash is the value Die panics with.
type Crash struct{ Point string }

// Die is an action for Arm: it panics with Crash{name}, for the test to
// recover where the agent's work began.
func Die(name string) { panic(Crash{Point: name}) }

// kill sends SIGKILL to this process and waits for it to arrive.
func kill(string) {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns: the signal ends the process
}
