package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHandler(t *testing.T) {
	version = "v1.2.3"
	t.Cleanup(func() { version = "dev" })
	type answer struct {
		Code int
		Body string
	}
	tests := []struct {
		name string
		env  map[string]string
		path string
		want answer
	}{
		{"root", nil, "/", answer{200, "Hello World!\n"}},
		{"root ignores greeting", map[string]string{"GREETING": "hi"}, "/", answer{200, "Hello World!\n"}},
		{"up", nil, "/up", answer{200, "ok"}},
		{"up failing", map[string]string{"HELLO_FAIL_UP": "1"}, "/up", answer{503, "failing on purpose"}},
		{"up not yet failing", map[string]string{"HELLO_FAIL_UP_AFTER": "1m"}, "/up", answer{200, "ok"}},
		{"up failing while the file exists", map[string]string{"HELLO_FAIL_UP_IF_FILE": "main.go"}, "/up", answer{503, "failing on purpose"}},
		{"up ok without the file", map[string]string{"HELLO_FAIL_UP_IF_FILE": "no-such-file"}, "/up", answer{200, "ok"}},
		{"version", nil, "/version", answer{200, "v1.2.3"}},
		{"greeting", map[string]string{"GREETING": "hi"}, "/env/GREETING", answer{200, "hi"}},
		{"secret hidden", map[string]string{"SECRET": "s3cret"}, "/env/SECRET", answer{404, "404 page not found\n"}},
		{"other path", nil, "/nope", answer{404, "404 page not found\n"}},
		{"bad sleep", nil, "/sleep/forever", answer{400, "want a duration up to 1m\n"}},
		{"sleep", nil, "/sleep/0s", answer{200, "slept 0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: time.Unix(1e9, 0)}
			c, err := parseConfig(env(tt.env), clk.now)
			if err != nil {
				t.Fatal(err)
			}
			code, body := get(t, newHandler(c), tt.path)
			if diff := cmp.Diff(tt.want, answer{code, body}); diff != "" {
				t.Errorf("GET %s (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

func TestFailUpAfter(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	c, err := parseConfig(env(map[string]string{"HELLO_FAIL_UP_AFTER": "10s"}), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(c)
	var got []int
	for _, elapsed := range []time.Duration{0, 9 * time.Second, 10 * time.Second, time.Hour} {
		clk.t = time.Unix(1e9, 0).Add(elapsed)
		code, _ := get(t, h, "/up")
		got = append(got, code)
	}
	if diff := cmp.Diff([]int{200, 200, 503, 503}, got); diff != "" {
		t.Errorf("/up codes over time (-want +got):\n%s", diff)
	}
}

// TestFailEvery: every n-th request but /up answers 500; /up never does
// and is not counted.
func TestFailEvery(t *testing.T) {
	c, err := parseConfig(env(map[string]string{"HELLO_FAIL_EVERY": "3"}), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(c)
	var got []int
	for _, p := range []string{"/", "/up", "/version", "/", "/up", "/", "/version", "/"} {
		code, _ := get(t, h, p)
		got = append(got, code)
	}
	if diff := cmp.Diff([]int{200, 200, 200, 500, 200, 200, 200, 500}, got); diff != "" {
		t.Errorf("codes (-want +got):\n%s", diff)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		env     map[string]string
		addr    string
		wantErr string
	}{
		{map[string]string{"ADDR": "127.77.0.2:8080", "PORT": "9"}, "127.77.0.2:8080", ""},
		{map[string]string{"PORT": "9000"}, "127.0.0.1:9000", ""},
		{nil, "127.0.0.1:8080", ""},
		{map[string]string{"HELLO_FAIL_UP": "maybe"}, "", "HELLO_FAIL_UP"},
		{map[string]string{"HELLO_FAIL_UP_AFTER": "soon"}, "", "HELLO_FAIL_UP_AFTER"},
		{map[string]string{"HELLO_FAIL_EVERY": "0"}, "", "HELLO_FAIL_EVERY"},
	}
	for _, tt := range tests {
		c, err := parseConfig(env(tt.env), time.Now)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseConfig(%v) = %v, want an error about %s", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseConfig(%v): %v", tt.env, err)
			continue
		}
		if c.addr != tt.addr {
			t.Errorf("parseConfig(%v).addr = %q, want %q", tt.env, c.addr, tt.addr)
		}
	}
}

// TestBinary builds hello with a version, runs it, and stops it with SIGTERM
// while a request is in flight: the request completes and hello exits 0.
func TestBinary(t *testing.T) {
	goBin := testenv.Command(t, "go")
	bin := filepath.Join(t.TempDir(), "hello")
	build := exec.Command(goBin, "build", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ADDR=127.0.0.1:0", "GREETING=bonjour")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	first := <-lines
	addr, ok := strings.CutPrefix(first, "hello v9.9.9-test listening on ")
	if !ok {
		t.Fatalf("first log line = %q", first)
	}
	base := "http://" + addr

	for path, want := range map[string]string{
		"/":             "Hello World!\n",
		"/up":           "ok",
		"/version":      "v9.9.9-test",
		"/env/GREETING": "bonjour",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("GET %s = %d %q, want 200 %q", path, resp.StatusCode, b, want)
		}
	}

	// A request in flight: its headers arrived, its body has not.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/sleep/300ms", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "slept 300ms" {
		t.Errorf("in-flight request body = %q, %v; want it finished", b, err)
	}
	var rest []string
	for l := range lines { // until hello exits and stderr closes
		rest = append(rest, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("hello exited with %v, want 0", err)
	}
	if diff := cmp.Diff([]string{"hello v9.9.9-test stopped"}, rest); diff != "" {
		t.Errorf("log after SIGTERM (-want +got):\n%s", diff)
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("hello still answers after it exited")
	}
}

// TestMigrate: `hello migrate` appends one line per run to
// HELLO_MIGRATE_LOG, and fails on purpose without appending.
func TestMigrate(t *testing.T) {
	log := filepath.Join(t.TempDir(), "migrations")
	vars := map[string]string{"ADDR": "127.0.0.1:1", "HELLO_MIGRATE_LOG": log}
	var out, errb strings.Builder
	for range 2 {
		if code := migrate(env(vars), &out, &errb); code != 0 {
			t.Fatalf("migrate = %d, stderr %q", code, errb.String())
		}
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if want := "dev 127.0.0.1:1\ndev 127.0.0.1:1\n"; string(b) != want {
		t.Errorf("log = %q, want %q", b, want)
	}
	vars["HELLO_MIGRATE_FAIL"] = "1"
	out.Reset()
	if code := migrate(env(vars), &out, &errb); code != 3 || !strings.Contains(out.String(), "step 6 of 6") {
		t.Errorf("failing migrate = %d, stdout %q", code, out.String())
	}
	if b2, _ := os.ReadFile(log); string(b2) != string(b) {
		t.Errorf("a failed migration appended: %q", b2)
	}
}
