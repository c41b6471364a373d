package caddy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// newClient returns a client for in whose server listens on in.HTTPAddr.
func newClient(t testing.TB, in *caddytest.Instance) *caddy.Client {
	t.Helper()
	c, err := caddy.New(caddy.Config{Admin: in.Admin, Listen: []string{in.Listen}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// backend starts an HTTP server on 127.0.0.1 that answers its name, and
// returns its host:port.
func backend(t testing.TB, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// get sends GET / with the Host header through Caddy at addr.
func get(t testing.TB, client *http.Client, addr, host string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// wantBody fails unless GET with host through Caddy answers 200 and body.
// A connection error is retried twice: a request on a new connection that
// Caddy accepts right at a config reload can be dropped (see
// BenchmarkFreshConnectionsDuringSwitch); that is not what these checks test.
func wantBody(t testing.TB, in *caddytest.Instance, host, body string) {
	t.Helper()
	st, got, err := getRetry(t, http.DefaultClient, in.HTTPAddr, host)
	if err != nil || st != http.StatusOK || got != body {
		t.Fatalf("GET Host %s: %d %q %v; want 200 %q", host, st, got, err, body)
	}
}

// getRetry is get with up to two retries after a connection error.
func getRetry(t testing.TB, client *http.Client, addr, host string) (int, string, error) {
	t.Helper()
	for i := 0; ; i++ {
		st, body, err := get(t, client, addr, host)
		if err == nil || i == 2 {
			return st, body, err
		}
		t.Logf("GET Host %s: %v (retrying)", host, err)
	}
}

func route(svc, upstream string) caddy.Route {
	return caddy.Route{Service: svc, Hostnames: []string{svc + ".example.com"}, Upstream: upstream}
}

func TestEnsure(t *testing.T) {
	other := `{"listen":["127.0.0.1:0"],"routes":[{"match":[{"host":["other.test"]}],"handle":[{"handler":"static_response","body":"other"}]}]}`
	for _, tc := range []struct {
		name      string
		opts      []caddytest.Option
		wantGrace string
	}{
		{"empty config over unix socket", nil, "30s"},
		{"empty config over TCP", []caddytest.Option{caddytest.TCPAdmin()}, "30s"},
		{"other server and app", []caddytest.Option{caddytest.WithApps(
			`{"http":{"servers":{"other":` + other + `}},"pki":{"certificate_authorities":{"local":{"install_trust":false}}}}`)}, "30s"},
		{"operator grace period kept", []caddytest.Option{caddytest.WithApps(
			`{"http":{"grace_period":"5s","servers":{"other":` + other + `}}}`)}, "5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := caddytest.Start(t, tc.opts...)
			c := newClient(t, in)
			before := in.MustDo(t, http.MethodGet, "/config/", "").Body
			if err := c.Ensure(t.Context()); err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				Apps map[string]json.RawMessage `json:"apps"`
			}
			after := in.MustDo(t, http.MethodGet, "/config/", "").Body
			if err := json.Unmarshal([]byte(after), &cfg); err != nil {
				t.Fatal(err)
			}
			var httpApp struct {
				GracePeriod string                     `json:"grace_period"`
				Servers     map[string]json.RawMessage `json:"servers"`
			}
			if err := json.Unmarshal(cfg.Apps["http"], &httpApp); err != nil {
				t.Fatal(err)
			}
			if httpApp.GracePeriod != tc.wantGrace {
				t.Errorf("grace_period = %q, want %q", httpApp.GracePeriod, tc.wantGrace)
			}
			wantSrv := `{"automatic_https":{"disable":true},"listen":["` + in.HTTPAddr + `"],"routes":[` + fallbackJSON + `]}`
			if got := string(httpApp.Servers["jailkeeper"]); got != wantSrv {
				t.Errorf("server = %s, want %s", got, wantSrv)
			}
			// Everything else is as it was: drop what Ensure adds and compare.
			var b, a map[string]any
			json.Unmarshal([]byte(before), &b)
			json.Unmarshal([]byte(after), &a)
			aHTTP := a["apps"].(map[string]any)["http"].(map[string]any)
			delete(aHTTP["servers"].(map[string]any), "jailkeeper")
			if _, had := b["apps"]; !had {
				delete(a, "apps")
			} else if bHTTP := b["apps"].(map[string]any)["http"].(map[string]any); bHTTP["grace_period"] == nil {
				delete(aHTTP, "grace_period")
			}
			if diff := cmp.Diff(b, a); diff != "" {
				t.Errorf("Ensure changed other config (-before +after):\n%s", diff)
			}

			// Idempotent: a second Ensure writes nothing.
			writes := c.Stats().Writes
			if err := c.Ensure(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := c.Stats().Writes; got != writes {
				t.Errorf("second Ensure wrote %d times", got-writes)
			}

			// Our server changed by hand is put back; other servers are not.
			in.MustDo(t, http.MethodPatch, "/config/apps/http/servers/jailkeeper/automatic_https", `{"disable_redirects":true}`)
			in.MustDo(t, http.MethodPatch, "/config/apps/http/servers/jailkeeper/listen", `["127.0.0.1:1"]`)
			if err := c.Ensure(t.Context()); err != nil {
				t.Fatal(err)
			}
			srv := in.MustDo(t, http.MethodGet, "/config/apps/http/servers/jailkeeper", "").Body
			if !strings.Contains(srv, in.HTTPAddr) || !strings.Contains(srv, `"disable":true`) {
				t.Errorf("server after repair = %s", srv)
			}
		})
	}
}

func TestSetRoutesTraffic(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	ra := caddy.Route{Service: "alpha", Hostnames: []string{"alpha.example.com", "www.alpha.example.com"}, Upstream: a}
	rb := caddy.Route{Service: "beta", Hostnames: []string{"beta.example.com"}, Upstream: b, StreamCloseDelay: 20 * time.Minute}
	// No Ensure first: Set creates the server itself.
	if err := c.Set(t.Context(), ra, rb); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "alpha.example.com", "A")
	wantBody(t, in, "www.alpha.example.com", "A")
	wantBody(t, in, "beta.example.com", "B")

	got, err := c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]caddy.Route{"alpha": ra.Normalize(), "beta": rb.Normalize()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Routes (-want +got):\n%s", diff)
	}

	// The same Set again writes nothing.
	writes := c.Stats().Writes
	if err := c.Set(t.Context(), ra, rb); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Writes - writes; n != 0 {
		t.Errorf("unchanged Set wrote %d times", n)
	}

	// A route edited by hand is reported Drifted and repaired by Set.
	in.MustDo(t, http.MethodDelete, "/id/jailkeeper.proxy.alpha/transport", "")
	got, err = c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !got["alpha"].Drifted || got["beta"].Drifted {
		t.Fatalf("Drifted: alpha %v beta %v, want true false", got["alpha"].Drifted, got["beta"].Drifted)
	}
	if err := c.Set(t.Context(), ra); err != nil {
		t.Fatal(err)
	}
	got, _ = c.Routes(t.Context())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Routes after repair (-want +got):\n%s", diff)
	}
}

func TestSwitchUsesIfMatch(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	a, b, x := backend(t, "A"), backend(t, "B"), backend(t, "X")
	if err := c.Set(t.Context(), route("web", a), route("api", a)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var writes []string
	interfere := ""
	caddy.SetTestHookBeforeWrite(c, func(method, path string) {
		mu.Lock()
		writes = append(writes, method+" "+path)
		do := interfere
		interfere = ""
		mu.Unlock()
		switch do {
		case "upstreams":
			// Someone else switches the same handler between our GET
			// and our PATCH.
			in.MustDo(t, http.MethodPatch, "/id/jailkeeper.proxy.web/upstreams", `[{"dial":"`+x+`"}]`)
		case "delete":
			// The route vanishes between our GET and our PATCH.
			in.MustDo(t, http.MethodDelete, "/id/jailkeeper.route.web", "")
		case "routes":
			// Someone else adds a route of their own to our server.
			in.MustDo(t, http.MethodPost, "/config/apps/http/servers/jailkeeper/routes",
				`{"match":[{"host":["foreign.example.com"]}],"handle":[{"handler":"static_response","body":"foreign"}],"terminal":true}`)
		}
	})

	t.Run("switch", func(t *testing.T) {
		mu.Lock()
		interfere, writes = "upstreams", nil
		mu.Unlock()
		st := c.Stats()
		if err := c.Set(t.Context(), route("web", b)); err != nil {
			t.Fatal(err)
		}
		wantBody(t, in, "web.example.com", "B")
		wantBody(t, in, "api.example.com", "A")
		after := c.Stats()
		if after.Conflicts-st.Conflicts != 1 || after.Switches-st.Switches != 1 {
			t.Errorf("conflicts %d switches %d, want 1 and 1", after.Conflicts-st.Conflicts, after.Switches-st.Switches)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []string{"PATCH /id/jailkeeper.proxy.web/upstreams", "PATCH /id/jailkeeper.proxy.web/upstreams"}
		if diff := cmp.Diff(want, writes); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})

	t.Run("full write", func(t *testing.T) {
		mu.Lock()
		interfere, writes = "routes", nil
		mu.Unlock()
		st := c.Stats()
		// Two switches at once: one write of the routes array.
		if err := c.Set(t.Context(), route("web", a), route("api", b)); err != nil {
			t.Fatal(err)
		}
		wantBody(t, in, "web.example.com", "A")
		wantBody(t, in, "api.example.com", "B")
		wantBody(t, in, "foreign.example.com", "foreign")
		if n := c.Stats().Conflicts - st.Conflicts; n != 1 {
			t.Errorf("conflicts = %d, want 1", n)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []string{"PATCH /config/apps/http/servers/jailkeeper/routes", "PATCH /config/apps/http/servers/jailkeeper/routes"}
		if diff := cmp.Diff(want, writes); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})

	t.Run("route gone before switch", func(t *testing.T) {
		// The 404 of the PATCH makes Set read again and re-create the route.
		mu.Lock()
		interfere, writes = "delete", nil
		mu.Unlock()
		if err := c.Set(t.Context(), route("web", b)); err != nil {
			t.Fatal(err)
		}
		wantBody(t, in, "web.example.com", "B")
		wantBody(t, in, "api.example.com", "B")
		wantBody(t, in, "foreign.example.com", "foreign")
		mu.Lock()
		defer mu.Unlock()
		want := []string{"PATCH /id/jailkeeper.proxy.web/upstreams", "PATCH /config/apps/http/servers/jailkeeper/routes"}
		if diff := cmp.Diff(want, writes); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})
}

func TestRestartRecreates(t *testing.T) {
	in := caddytest.Start(t, caddytest.TCPAdmin())
	c := newClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	routes := []caddy.Route{route("one", a), route("two", b)}
	if err := c.Set(t.Context(), routes...); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "one.example.com", "A")

	in.Restart(t)
	got, err := c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("Routes after restart = %v, want none", got)
	}
	if err := c.Set(t.Context(), routes...); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "one.example.com", "A")
	wantBody(t, in, "two.example.com", "B")
	got, err = c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Routes after re-create = %v", got)
	}
}

func TestRemove(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), route("one", a), route("two", b)); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(t.Context(), "one", "never_there"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]caddy.Route{"two": route("two", b).Normalize()}, got); diff != "" {
		t.Errorf("Routes (-want +got):\n%s", diff)
	}
	wantBody(t, in, "two.example.com", "B")
	if _, body, err := getRetry(t, http.DefaultClient, in.HTTPAddr, "one.example.com"); err != nil || body == "A" {
		t.Errorf("removed route still served: %q %v", body, err)
	}
	writes := c.Stats().Writes
	if err := c.Remove(t.Context(), "one"); err != nil {
		t.Fatal(err)
	}
	if c.Stats().Writes != writes {
		t.Error("removing a missing route wrote")
	}
}

func TestConcurrentSetCoalesces(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	a := backend(t, "A")
	const n = 20
	var first atomic.Bool
	caddy.SetTestHookBatch(c, func(inBatch int) {
		if first.Swap(true) {
			return
		}
		// Hold the first batch until every other call is queued.
		deadline := time.Now().Add(20 * time.Second)
		for inBatch+caddy.Pending(c) < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- c.Set(t.Context(), route(fmt.Sprintf("svc%02d", i), a))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := c.Stats()
	t.Logf("%d Set calls: %d batches, %d writes", st.Calls, st.Batches, st.Writes)
	if st.Calls != n || st.Writes >= st.Calls || st.Batches != 2 {
		t.Errorf("stats %+v: want %d calls in 2 batches and fewer writes than calls", st, n)
	}
	got, err := c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d routes, want %d", len(got), n)
	}
	wantBody(t, in, "svc07.example.com", "A")
}

// TestSwitchUnderLoad switches an upstream back and forth while 4 clients
// send requests through Caddy for 2 s, and wants every request answered 2xx.
//
// Caddy 2.11.9 (built with a Go whose net/http drops a request read after
// Server.Shutdown began, golang/go#65802) closes a connection that its old
// server accepted just before a reload as soon as the request arrives: the
// client sees EOF or a reset before any byte of an answer. The request was
// never handled, so an idempotent one can be sent again; this test does so
// once, counts those drops and logs them, and fails on anything else.
// BenchmarkFreshConnectionsDuringSwitch measures the drop rate.
func TestSwitchUnderLoad(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), route("web", a)); err != nil {
		t.Fatal(err)
	}
	// Keep-alive connections, as browsers and proxies use.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	const workers = 4
	const maxRequests = 200000 // bound on top of the time bound
	stop := time.Now().Add(2 * time.Second)
	var ok, bad, failed, dropped, total atomic.Int64
	var seenA, seenB atomic.Bool
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(stop) && total.Add(1) <= maxRequests {
				st, body, err := get(t, client, in.HTTPAddr, "web.example.com")
				if err != nil && droppedUnanswered(err) {
					dropped.Add(1)
					st, body, err = get(t, client, in.HTTPAddr, "web.example.com")
				}
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case st/100 != 2:
					bad.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d %q", st, body))
				default:
					ok.Add(1)
					seenA.Store(seenA.Load() || body == "A")
					seenB.Store(seenB.Load() || body == "B")
				}
			}
		})
	}
	switches := 0
	for up := b; time.Now().Before(stop); {
		if err := c.Set(t.Context(), route("web", up)); err != nil {
			t.Fatal(err)
		}
		switches++
		if up == a {
			up = b
		} else {
			up = a
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("%d switches under load: %d ok, %d non-2xx, %d errors; %d dropped unanswered at a reload and sent again",
		switches, ok.Load(), bad.Load(), failed.Load(), dropped.Load())
	if bad.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("lost requests: %d non-2xx, %d errors; first: %v", bad.Load(), failed.Load(), firstErr.Load())
	}
	if ok.Load() == 0 || !seenA.Load() || !seenB.Load() || switches < 2 {
		t.Fatalf("load did not cover the switch: ok %d, saw A %v, saw B %v, switches %d", ok.Load(), seenA.Load(), seenB.Load(), switches)
	}
	if st := c.Stats(); st.Switches == 0 {
		t.Errorf("no upstream PATCH switch happened: %+v", st)
	}
}

// droppedUnanswered reports whether err is Caddy closing the connection
// before any byte of an answer (EOF or reset).
func droppedUnanswered(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

func TestOpenFilesStable(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	ups := []string{backend(t, "A"), backend(t, "B")}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	step := func(i int) {
		t.Helper()
		if err := c.Set(t.Context(), route("web", ups[i%2])); err != nil {
			t.Fatal(err)
		}
		// A request opens an upstream connection that Caddy keeps idle;
		// without an explicit transport the reload leaks it.
		if st, body, err := getRetry(t, client, in.HTTPAddr, "web.example.com"); err != nil || st != 200 || body != []string{"A", "B"}[i%2] {
			t.Fatalf("GET: %d %q %v", st, body, err)
		}
	}
	step(0)
	step(1)
	base := in.OpenFiles(t)
	for i := range 20 {
		step(i)
	}
	after := in.OpenFiles(t)
	t.Logf("caddy open files: %d before, %d after 20 switches", base, after)
	if after > base+5 {
		t.Errorf("open files grew from %d to %d across 20 switches", base, after)
	}
}

func TestUnixSocketSendsEmptyHost(t *testing.T) {
	// The wire format, checked on a socket of our own: Caddy up to 2.9
	// wants an empty Host on its unix admin socket (the pinned Caddy does
	// not check, so it cannot tell).
	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hosts := make(chan []string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hosts <- append([]string{r.Host}, r.Header.Values("Host")...):
		default:
		}
		io.WriteString(w, "[]")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := caddy.New(caddy.Config{Admin: "unix/" + sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Routes(t.Context()); err != nil {
		t.Fatal(err)
	}
	// net/http's server rejects an HTTP/1.1 request without Host with 400,
	// so reaching the handler with r.Host == "" means "Host: " was sent.
	if got := <-hosts; got[0] != "" {
		t.Fatalf("Host = %q, want empty", got)
	}
}

func TestAdminErrors(t *testing.T) {
	in := caddytest.Start(t)
	// A listen address that is taken: Caddy refuses the config it is given.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	c, err := caddy.New(caddy.Config{Admin: in.Admin, Listen: []string{taken.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Set(t.Context(), route("web", backend(t, "A")))
	var ae *caddy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("Set with a taken listen address: %v, want *APIError", err)
	}
	// Caddy answers 500 when the config it was given fails to load.
	if ae.Method != http.MethodPut || ae.Path != "/config/apps/http" || ae.Status != http.StatusInternalServerError ||
		!strings.Contains(ae.Body, "address already in use") {
		t.Errorf("APIError = %+v", ae)
	}
	if !strings.Contains(err.Error(), "PUT /config/apps/http: 500") {
		t.Errorf("error text %q lacks method, path and status", err)
	}
	// The refused write left the config as it was.
	if r := in.MustDo(t, http.MethodGet, "/config/apps", ""); strings.TrimSpace(r.Body) != "null" {
		t.Errorf("apps after a refused write = %s", r.Body)
	}
	if err := c.Set(t.Context(), caddy.Route{Service: "x"}); !errors.Is(err, caddy.ErrInvalid) {
		t.Errorf("Set of an invalid route: %v, want ErrInvalid", err)
	}
}

// fallbackJSON is the fallback route as Caddy returns it.
const fallbackJSON = `{"@id":"jailkeeper__fallback","handle":[{"body":"no service for this host\n","handler":"static_response","status_code":404}],"terminal":true}`

// TestFallback: a host no service claims gets a 404, not Caddy's empty 200;
// the fallback stays last when routes are appended after it.
func TestFallback(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	if err := c.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if code, body, err := get(t, client, in.HTTPAddr, "nobody.example.com"); err != nil || code != 404 || body != "no service for this host\n" {
		t.Fatalf("unclaimed host: %d %q %v, want 404", code, body, err)
	}
	if err := c.Set(t.Context(), route("web", backend(t, "web"))); err != nil {
		t.Fatal(err)
	}
	if code, body, err := get(t, client, in.HTTPAddr, "web.example.com"); err != nil || code != 200 || body != "web" {
		t.Fatalf("web: %d %q %v", code, body, err)
	}
	// Someone appends a route behind the fallback; Ensure moves the fallback
	// back to the end so the route can match.
	foreign := `{"match":[{"host":["foreign.example.com"]}],"handle":[{"handler":"static_response","body":"foreign"}],"terminal":true}`
	in.MustDo(t, http.MethodPost, "/config/apps/http/servers/jailkeeper/routes", foreign)
	if err := c.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	var routes []map[string]any
	if err := json.Unmarshal([]byte(in.MustDo(t, http.MethodGet, "/config/apps/http/servers/jailkeeper/routes", "").Body), &routes); err != nil {
		t.Fatal(err)
	}
	if len(routes) != 3 || routes[2]["@id"] != "jailkeeper__fallback" {
		t.Fatalf("routes after Ensure: %v", routes)
	}
	if code, body, err := get(t, client, in.HTTPAddr, "foreign.example.com"); err != nil || code != 200 || body != "foreign" {
		t.Errorf("foreign: %d %q %v", code, body, err)
	}
	got, err := c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["_fallback"]; ok || len(got) != 1 {
		t.Errorf("Routes = %v, want only web", got)
	}
}
