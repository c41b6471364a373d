package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/crashpoint"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// migratingRuntime is a fakeRuntime that can run migrations (Migrator).
// Each run is recorded in the fake's history as "migrate NAME", each
// record as "migrated NAME".
type migratingRuntime struct {
	*fakeRuntime
	mu        sync.Mutex
	output    string          // what each migration prints
	err       error           // what each migration returns
	block     bool            // migrations run until their ctx ends
	started   chan string     // receives the release name as a migration begins
	recordErr error           // what SetMigrated returns
	notRun    map[string]bool // releases found not running when migrated
}

func newMigratingRuntime(rels ...release.Release) *migratingRuntime {
	return &migratingRuntime{fakeRuntime: newFakeRuntime(rels...), notRun: map[string]bool{}}
}

var _ Migrator = (*migratingRuntime)(nil)

func (m *migratingRuntime) Migrate(ctx context.Context, name string, argv []string, out io.Writer) error {
	m.fakeRuntime.mu.Lock()
	m.record("migrate %s", name)
	if r := m.rels[name]; r == nil || !r.Running {
		// As both runtimes do: a migration needs its release running.
		m.notRun[name] = true
		m.fakeRuntime.mu.Unlock()
		return fmt.Errorf("migrate %s: release is not running", name)
	}
	m.fakeRuntime.mu.Unlock()
	m.mu.Lock()
	output, err, block, started := m.output, m.err, m.block, m.started
	m.mu.Unlock()
	if started != nil {
		started <- name
	}
	io.WriteString(out, output)
	if block {
		<-ctx.Done()
		return errors.New("signal: killed")
	}
	return err
}

func (m *migratingRuntime) SetMigrated(_ context.Context, name string, t time.Time) error {
	m.mu.Lock()
	err := m.recordErr
	m.mu.Unlock()
	if err != nil {
		return err
	}
	m.fakeRuntime.mu.Lock()
	defer m.fakeRuntime.mu.Unlock()
	m.record("migrated %s", name)
	r, ok := m.rels[name]
	if !ok {
		return fmt.Errorf("release %s: %w", name, release.ErrNotFound)
	}
	r.Migrated = t
	return nil
}

func (m *migratingRuntime) set(f func(m *migratingRuntime)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

// newMigrateHarness is a harness whose runtime runs migrations.
func newMigrateHarness(rels ...release.Release) (*harness, *migratingRuntime) {
	h := newHarness()
	m := newMigratingRuntime(rels...)
	h.rt = m.fakeRuntime
	o := h.options()
	o.Runtime = m
	h.exec = NewExecutor(o)
	return h, m
}

// migrating is s with a migration.
func migrating(s manifest.Service) manifest.Service {
	s.Migrate = []string{"/usr/local/bin/" + s.Service, "migrate"}
	s.MigrateTimeout = time.Minute
	return s
}

// calls returns the fake's history entries that start with one of the
// prefixes, in order.
func calls(h *harness, prefixes ...string) []string {
	var out []string
	for _, c := range h.rt.history() {
		if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(c, p) }) {
			out = append(out, c)
		}
	}
	return out
}

// A migration runs once per new release: after its start, in the running
// release, before its gate and switch; never again on a converged pass,
// and never on a rollback to the retained release.
func TestMigrateRunsOncePerNewRelease(t *testing.T) {
	h, m := newMigrateHarness()
	v1, v2 := migrating(svc("hello", sha1)), migrating(svc("hello", sha2))
	r1, r2 := v1.ReleaseName(), v2.ReleaseName()
	for _, v := range []manifest.Service{v1, v1, v2, v2, v1} {
		if _, err := h.pass(t, v); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Minute)
	}
	mustState(t, h, r1, release.StateLive, true)
	got := calls(h, "create", "start", "migrate", "set")
	want := []string{
		"create " + r1, "start " + r1, "migrate " + r1, "migrated " + r1, "set " + r1 + " live",
		"create " + r2, "start " + r2, "migrate " + r2, "migrated " + r2, "set " + r2 + " live", "set " + r1 + " retired",
		// The rollback: no migration.
		"start " + r1, "set " + r1 + " live", "set " + r2 + " retired",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if len(m.notRun) > 0 {
		t.Errorf("migrated releases that were not running: %v", m.notRun)
	}
	if r, _ := h.rt.get(r1); !r.Migrated.Equal(t0) {
		t.Errorf("%s migrated at %v, want %v", r1, r.Migrated, t0)
	}
	// No route pointed at a release before its migration finished: the
	// only writes are the switches after the gates.
	if diff := cmp.Diff([]string{"set hello 127.77.0.11:8080", "set hello 127.77.0.12:8080", "set hello 127.77.0.11:8080"}, h.proxy.writes); diff != "" {
		t.Errorf("route writes (-want +got):\n%s", diff)
	}
}

// A migration that fails fails the release, with the last lines of its
// output in the reason; the live release keeps its traffic and keeps
// running. The retry after the backoff runs the migration again.
func TestMigrateFailureKeepsTraffic(t *testing.T) {
	h, m := newMigrateHarness()
	v1, v2 := svc("hello", sha1), migrating(svc("hello", sha2))
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	r1, _ := h.rt.get(v1.ReleaseName())
	m.set(func(m *migratingRuntime) {
		m.output = "line 1\nline 2\n\x1b[31mline 3\x1b[0m\nline 4\nline 5\nline 6\nline 7: relation \"users\" already exists\n"
		m.err = errors.New("exit status 3")
	})
	res, err := h.pass(t, v2)
	if err == nil {
		t.Fatal("pass succeeded with a failing migration")
	}
	failed := mustState(t, h, v2.ReleaseName(), release.StateFailed, false)
	wantReason := `migrate /usr/local/bin/hello migrate: exit status 3; output: line 3 | line 4 | line 5 | line 6 | line 7: relation "users" already exists`
	if failed.Reason != wantReason || failed.Failures != 1 {
		t.Errorf("reason = %q (failures %d)\nwant     %q", failed.Reason, failed.Failures, wantReason)
	}
	if !failed.Migrated.IsZero() {
		t.Error("a failed migration was recorded as finished")
	}
	if got := h.proxy.upstream("hello"); got != r1.Addr() {
		t.Errorf("traffic moved to %q", got)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if st := res.Services[0]; st.State != "failed" || !strings.Contains(st.Message, "line 7") {
		t.Errorf("status = %+v", st)
	}
	if got := calls(h, "start", "migrate", "set", "stop"); !slices.Equal(got[len(got)-4:], []string{
		"start " + v2.ReleaseName(), "migrate " + v2.ReleaseName(), "set " + v2.ReleaseName() + " failed", "stop " + v2.ReleaseName(),
	}) {
		t.Errorf("calls = %v", got)
	}
	h.mu.Lock()
	last := h.events[len(h.events)-1]
	h.mu.Unlock()
	if last.Kind != EventFailed || last.HealthFailure || last.Reason != wantReason {
		t.Errorf("last event = %+v", last)
	}

	// Backing off: nothing runs. After it, the migration runs again.
	if _, err := h.pass(t, v2); err == nil {
		t.Fatal("backoff pass: no error")
	}
	if n := countPrefix(h.rt.history(), "migrate "+v2.ReleaseName()); n != 1 {
		t.Fatalf("migrations during the backoff: %d runs in all, want 1", n)
	}
	m.set(func(m *migratingRuntime) { m.err = nil })
	h.advance(Backoff(1) + time.Second)
	if _, err := h.pass(t, v2); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(h.rt.history(), "migrate "+v2.ReleaseName()); n != 2 {
		t.Errorf("migrations of %s: %d, want 2", v2.ReleaseName(), n)
	}
	mustState(t, h, v2.ReleaseName(), release.StateLive, true)
}

// A migration that outlives migrate_timeout is killed and fails the
// release, saying so.
func TestMigrateTimeout(t *testing.T) {
	h, m := newMigrateHarness()
	v1, v2 := svc("hello", sha1), migrating(svc("hello", sha2))
	v2.MigrateTimeout = 20 * time.Millisecond
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	m.set(func(m *migratingRuntime) { m.block, m.output = true, "copying rows\n" })
	if _, err := h.pass(t, v2); err == nil {
		t.Fatal("pass succeeded with a migration that never ended")
	}
	failed := mustState(t, h, v2.ReleaseName(), release.StateFailed, false)
	want := "migrate /usr/local/bin/hello migrate: not done within 20ms (killed): signal: killed; output: copying rows"
	if failed.Reason != want {
		t.Errorf("reason = %q, want %q", failed.Reason, want)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
}

// After a restart (a new Executor over the same releases): a migration
// recorded as finished is not run again; one that never finished (a
// crash while it ran) runs again. A release that was live or retired
// (one from before migrations ran, say) never migrates.
func TestMigrateAfterRestart(t *testing.T) {
	v1 := migrating(svc("hello", sha1))
	for _, tc := range []struct {
		name     string
		state    release.State
		migrated bool
		runs     int
	}{
		{"finished before the crash", release.StateReady, true, 0},
		{"interrupted by the crash", release.StateReady, false, 1},
		{"failed its gate after migrating", release.StateFailed, true, 0},
		{"retired, never recorded", release.StateRetired, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rel(v1, 11, tc.state, t0.Add(-time.Hour), false)
			if tc.migrated {
				r.Migrated = t0.Add(-time.Hour)
			}
			if tc.state == release.StateFailed {
				r.Failures, r.FailedAt = 1, t0.Add(-time.Hour)
			}
			h, _ := newMigrateHarness(r)
			if _, err := h.pass(t, v1); err != nil {
				t.Fatal(err)
			}
			mustState(t, h, r.Name, release.StateLive, true)
			if n := countPrefix(h.rt.history(), "migrate "+r.Name); n != tc.runs {
				t.Errorf("migrations = %d, want %d; calls %v", n, tc.runs, h.rt.history())
			}
		})
	}
}

// The crash point reconcile.migrate.ran sits after the command and before
// its record: a crash there leaves the migration unrecorded, and the next
// agent runs it again.
func TestMigrateCrashPointBeforeRecord(t *testing.T) {
	h, m := newMigrateHarness()
	v1 := migrating(svc("hello", sha1))
	var hits int
	disarm := crashpoint.Arm("reconcile.migrate.ran", func(string) {
		hits++
		if countPrefix(h.rt.history(), "migrate "+v1.ReleaseName()) != 1 || countPrefix(h.rt.history(), "migrated "+v1.ReleaseName()) != 0 {
			t.Errorf("at the crash point: calls %v, want the migration run and not recorded", h.rt.history())
		}
		// The agent dies here: its record is never written.
		m.set(func(m *migratingRuntime) { m.recordErr = errors.New("killed") })
	})
	_, err := h.pass(t, v1)
	disarm()
	if hits != 1 || err == nil {
		t.Fatalf("crash point hit %d times, pass err %v; want 1 hit and an error", hits, err)
	}
	r := mustState(t, h, v1.ReleaseName(), release.StateReady, false)
	if !r.Migrated.IsZero() || r.Failures != 0 {
		t.Errorf("after the crash: %+v, want no migration record and no failure", r)
	}

	m.set(func(m *migratingRuntime) { m.recordErr = nil })
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if n := countPrefix(h.rt.history(), "migrate "+v1.ReleaseName()); n != 2 {
		t.Errorf("migrations = %d, want 2 (again after the crash)", n)
	}
}

// A newer commit during a migration abandons the deploy: the migration is
// cancelled, its release stopped and not failed.
func TestMigratePreempted(t *testing.T) {
	h, m := newMigrateHarness()
	v1, v2 := migrating(svc("hello", sha1)), migrating(svc("hello", sha2))
	started := make(chan string, 1)
	m.set(func(m *migratingRuntime) { m.block, m.started = true, started })
	done := make(chan error, 1)
	go func() {
		_, err := h.exec.Pass(context.Background(), Desired{Services: []manifest.Service{v1}})
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the migration never started")
	}
	h.exec.Preempt(Desired{Services: []manifest.Service{v2}})
	if err := <-done; !errors.Is(err, ErrPreempted) {
		t.Fatalf("err = %v, want ErrPreempted", err)
	}
	r := mustState(t, h, v1.ReleaseName(), release.StateReady, false)
	if !r.Migrated.IsZero() {
		t.Error("a cancelled migration was recorded")
	}
}

// A runtime that cannot run migrations fails a release that has one,
// rather than serving it unmigrated.
func TestMigrateWithoutMigrator(t *testing.T) {
	h := newHarness()
	v1 := migrating(svc("hello", sha1))
	if _, err := h.pass(t, v1); err == nil {
		t.Fatal("pass succeeded")
	}
	r := mustState(t, h, v1.ReleaseName(), release.StateFailed, false)
	if want := "migrate /usr/local/bin/hello migrate: this runtime cannot run migrations; no output"; r.Reason != want {
		t.Errorf("reason = %q, want %q", r.Reason, want)
	}
}

// The migrate phase is timed when a migration runs, and only then. (The
// clock stands still: no fetch is timed.)
func TestMigratePhase(t *testing.T) {
	h, _ := newMigrateHarness()
	var (
		mu  sync.Mutex
		got []Phase
	)
	o := h.options()
	o.Runtime = h.exec.rt
	o.Phases = func(p PhaseTiming) { mu.Lock(); got = append(got, p.Phase); mu.Unlock() }
	h.exec = NewExecutor(o)
	v1, v2 := svc("hello", sha1), migrating(svc("hello", sha2))
	for _, tc := range []struct {
		s    manifest.Service
		want []Phase
	}{
		{v1, []Phase{PhaseCreate, PhaseStart, PhaseGate, PhaseSwitch, PhaseWatch}},
		{v2, []Phase{PhaseCreate, PhaseStart, PhaseMigrate, PhaseGate, PhaseSwitch, PhaseWatch, PhaseDrain}},
		{v1, []Phase{PhaseStart, PhaseGate, PhaseSwitch, PhaseWatch, PhaseDrain}}, // rollback
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		res, err := h.pass(t, tc.s)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: phases = %v, want %v", tc.s.ReleaseName(), got, tc.want)
		}
		mu.Unlock()
		_, has := res.Services[0].LastDeploy.Phases[PhaseMigrate]
		if want := slices.Contains(tc.want, PhaseMigrate); has != want {
			t.Errorf("%s: last_deploy has migrate: %v, want %v", tc.s.ReleaseName(), has, want)
		}
	}
}

func TestLastOutputLines(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"blank lines dropped", "a\n\n  \nb\n", "a | b"},
		{"last five", "1\n2\n3\n4\n5\n6\n", "2 | 3 | 4 | 5 | 6"},
		{"no trailing newline", "a\nb", "a | b"},
		{"escapes and control characters", "\x1b[1;31mred\x1b[0m\tok\r\n", "redok"},
		{"long line cut", long, strings.Repeat("x", 200) + "..."},
		{"invalid UTF-8", "a\xffb", "a?b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastOutputLines([]byte(tc.in), MigrateOutputLines); got != tc.want {
				t.Errorf("lastOutputLines(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, w := range []string{"abc", "defgh", "ij", "0123456789AB"} {
		if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := string(b.bytes()); got != "456789AB" {
		t.Errorf("tail = %q, want %q", got, "456789AB")
	}
	b = &tailBuffer{max: 8}
	b.Write([]byte("abc"))
	b.Write([]byte("defghij"))
	if got := string(b.bytes()); got != "cdefghij" {
		t.Errorf("tail = %q, want %q", got, "cdefghij")
	}
}

// A release whose app died at once because a stray holds its address is
// the host's fault, migration or not: nothing is migrated in it, nothing
// is marked failed, and the deploy goes on on another address.
func TestMigrateAddressInUse(t *testing.T) {
	h, m := newMigrateHarness()
	v1 := migrating(svc("hello", sha1))
	h.rt.held[netip.MustParseAddr("127.77.0.11")] = true // the first address handed out
	if _, err := h.pass(t, v1); err != nil {
		t.Fatalf("pass: %v", err)
	}
	r := mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if r.IP.String() == "127.77.0.11" {
		t.Fatalf("live on the held address %s", r.IP)
	}
	if got := failedMarks(h); got != nil {
		t.Errorf("marked failed: %v", got)
	}
	if len(m.notRun) > 0 {
		t.Errorf("migrations tried in releases that were not running: %v", m.notRun)
	}
	if n := countPrefix(h.rt.history(), "migrate "+v1.ReleaseName()); n != 1 {
		t.Errorf("migrations = %d, want 1 (in the release on a free address)", n)
	}
}

// A release whose app died before its migration fails with why it died,
// not with the migration's complaint.
func TestMigrateAppDied(t *testing.T) {
	h, m := newMigrateHarness()
	v1 := migrating(svc("hello", sha1))
	h.rt.dieOnStart["hello"] = true
	h.rt.exits[v1.ReleaseName()] = errors.New("exit status 2; log: hello: bad config")
	if _, err := h.pass(t, v1); err == nil {
		t.Fatal("pass succeeded")
	}
	r := mustState(t, h, v1.ReleaseName(), release.StateFailed, false)
	if want := "migrate /usr/local/bin/hello migrate: " + v1.ReleaseName() + " is not running: exit status 2; log: hello: bad config"; r.Reason != want {
		t.Errorf("reason = %q\nwant     %q", r.Reason, want)
	}
	if len(m.notRun) > 0 {
		t.Errorf("migrations tried in releases that were not running: %v", m.notRun)
	}
}
