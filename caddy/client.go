package caddy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults applied by New to a zero Config field.
const (
	DefaultServer      = "jailkeeper"
	DefaultListen      = ":8080"
	DefaultGracePeriod = 30 * time.Second
	// DefaultTimeout bounds one admin request.
	DefaultTimeout = 30 * time.Second
)

// maxAttempts bounds the retries of a write that Caddy refused with 412
// Precondition Failed (someone else changed the config in between).
const maxAttempts = 5

// Sentinel errors. Test with errors.Is.
var (
	// ErrConflict means every attempt of a conditional write (If-Match) was
	// refused with 412 because the config kept changing underneath.
	ErrConflict = errors.New("caddy: config changed concurrently")
	// ErrNotFound means the admin API answered 404: the object (an @id,
	// a config key) does not exist.
	ErrNotFound = errors.New("caddy: not found")
	// ErrClosed is returned by calls made after or cut short by Close.
	ErrClosed = errors.New("caddy: client closed")
	// ErrInvalid means a Route or Config is not acceptable; nothing was sent.
	ErrInvalid = errors.New("caddy: invalid")
)

// APIError is a non-2xx answer of the admin API. It matches ErrNotFound
// (404) and, for 412, ErrConflict with errors.Is.
type APIError struct {
	Method string
	Path   string
	Status int
	Body   string
}

// Error gives method, path, status and Caddy's answer, e.g.
// `caddy admin PATCH /id/x/upstreams: 412 Precondition Failed: {...}`.
func (e *APIError) Error() string {
	return fmt.Sprintf("caddy admin %s %s: %d %s: %s", e.Method, e.Path, e.Status,
		http.StatusText(e.Status), strings.TrimSpace(e.Body))
}

// Is makes errors.Is(err, ErrNotFound) true for a 404 and
// errors.Is(err, ErrConflict) true for a 412.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusPreconditionFailed
	}
	return false
}

// Config says which Caddy to talk to and what jailkeeper owns in it.
type Config struct {
	// Admin is Caddy's admin address: "unix//path/to/admin.sock",
	// "127.0.0.1:2019" or "http://127.0.0.1:2019". Required.
	Admin string
	// Server is the name of the server object jailkeeper owns under
	// apps.http.servers. Default DefaultServer.
	Server string
	// Listen is the server's listen addresses. Default [DefaultListen].
	// The server speaks plain HTTP: automatic HTTPS is disabled on it.
	Listen []string
	// GracePeriod is set as the http app's grace_period when the app has
	// none (Caddy's default, 0, waits forever for old connections on every
	// reload). An operator's own value is left alone. Default
	// DefaultGracePeriod.
	GracePeriod time.Duration
	// Timeout bounds each admin request. Default DefaultTimeout.
	Timeout time.Duration
	// UpstreamDir, when set, makes a switch a file write instead of a
	// config reload. Each route's upstream is then dialled as
	// {file.<UpstreamDir>/<service>}, a placeholder Caddy resolves on
	// every request by reading that file, and Set switches the upstream
	// by replacing the file atomically (write, rename): Caddy's
	// config, and so its servers, stay as they are. Without it every
	// switch is an admin write, and every admin write restarts Caddy's
	// servers, which drops a request on a connection the old server had
	// just accepted (see the package doc). Caddy must run on this host and
	// be able to read the directory; Set creates it (0755: the files hold
	// addresses, nothing secret). An absolute, clean path without '{',
	// '}' or '\'.
	UpstreamDir string
}

var serverNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Client talks to one Caddy's admin API. It is safe for concurrent use. All
// writes go through one goroutine, which merges the Set, Remove and Ensure
// calls that are pending together into as few admin writes as it can.
// Reads (Routes, Drain) go directly to Caddy.
type Client struct {
	cfg     Config
	base    string // URL prefix, e.g. "http://127.0.0.1:2019"
	unix    bool
	origin  string
	http    *http.Client
	srvPath string // /config/apps/http/servers/<server>

	mu      sync.Mutex
	pending []*op
	closed  bool
	wake    chan struct{}
	// window is the least time between two admin writes of different
	// batches (ReloadWindow with an UpstreamDir, else 0); lastWrite is
	// when the writer last wrote. Both belong to the writer goroutine.
	window    time.Duration
	lastWrite time.Time
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}

	stats struct {
		calls, batches, writes, switches, files, conflicts atomic.Uint64
	}
	memo routeMemo // what the last read of the routes parsed to
	// ensured is the last http app EnsureRoutes found in place, upstreams
	// what the client last read of each upstream file.
	ensured   ensuredMemo
	upstreams upstreamCache

	// testHookBeforeWrite, when set, runs before every admin write request
	// (in the writer goroutine). Tests use it to change the config between
	// a read and the conditional write that follows it.
	testHookBeforeWrite func(method, path string)
	// testHookBatch, when set, runs at the start of every batch with the
	// number of calls merged into it.
	testHookBatch func(n int)
	// testHookFileWrite, when set, runs before every upstream file write.
	testHookFileWrite func(service string)
}

// New checks cfg, fills in defaults and starts the writer goroutine; it
// does not contact Caddy. Call Close when done.
func New(cfg Config) (*Client, error) {
	if cfg.Server == "" {
		cfg.Server = DefaultServer
	}
	if !serverNameRE.MatchString(cfg.Server) {
		return nil, fmt.Errorf("caddy config: server %q: want [A-Za-z0-9_-]{1,64}: %w", cfg.Server, ErrInvalid)
	}
	if len(cfg.Listen) == 0 {
		cfg.Listen = []string{DefaultListen}
	}
	cfg.Listen = append([]string(nil), cfg.Listen...)
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = DefaultGracePeriod
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if d := cfg.UpstreamDir; d != "" && (!filepath.IsAbs(d) || filepath.Clean(d) != d || strings.ContainsAny(d, "{}\\")) {
		return nil, fmt.Errorf("caddy config: upstream dir %q: want an absolute, clean path without '{', '}' or '\\': %w", d, ErrInvalid)
	}
	c := &Client{
		cfg:     cfg,
		srvPath: "/config/apps/http/servers/" + cfg.Server,
		window:  reloadWindowFor(cfg.UpstreamDir),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	switch {
	case strings.HasPrefix(cfg.Admin, "unix/"):
		// Caddy's network address syntax: "unix/" followed by the path,
		// so "unix//var/run/caddy.sock" is /var/run/caddy.sock.
		sock := strings.TrimPrefix(cfg.Admin, "unix/")
		if sock == "" {
			return nil, fmt.Errorf("caddy config: admin %q: no socket path: %w", cfg.Admin, ErrInvalid)
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}
		c.base = "http://caddy-admin"
		c.unix = true
	case cfg.Admin == "":
		return nil, fmt.Errorf("caddy config: admin address is empty: %w", ErrInvalid)
	default:
		addr := cfg.Admin
		if !strings.Contains(addr, "://") {
			addr = "http://" + addr
		}
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("caddy config: admin %q: want unix//path, host:port or http://host:port: %w", cfg.Admin, ErrInvalid)
		}
		c.base = u.Scheme + "://" + u.Host
		c.origin = c.base
	}
	c.http = &http.Client{Transport: tr}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.writer()
	return c, nil
}

// Close stops the writer goroutine. Calls still pending get ErrClosed; a
// write already sent to Caddy is cut short. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	if already {
		<-c.done
		return nil
	}
	c.cancel()
	for _, o := range pending {
		o.finish(ErrClosed)
	}
	<-c.done
	c.http.CloseIdleConnections()
	return nil
}

// Stats counts what the client did since New. Writes is the number of admin
// write requests sent (each one makes Caddy reload its config).
type Stats struct {
	Calls     uint64 // Set, Remove and Ensure calls
	Batches   uint64 // groups of calls the writer handled together
	Writes    uint64 // admin write requests (POST, PUT, PATCH, DELETE) sent
	Switches  uint64 // upstream switches done by PATCHing a handler's upstreams
	Files     uint64 // upstream files written (Config.UpstreamDir): switches without a reload
	Conflicts uint64 // writes refused with 412 and retried
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (c *Client) Stats() Stats {
	return Stats{
		Calls:     c.stats.calls.Load(),
		Batches:   c.stats.batches.Load(),
		Writes:    c.stats.writes.Load(),
		Switches:  c.stats.switches.Load(),
		Files:     c.stats.files.Load(),
		Conflicts: c.stats.conflicts.Load(),
	}
}

// response is a 2xx answer of the admin API.
type response struct {
	body []byte
	etag string
}

// do sends one admin request. ifMatch, when not empty, is sent as If-Match.
// A non-2xx answer is returned as *APIError.
//
// Every admin write makes Caddy replace its admin server too, and the old
// one shuts down after answering: a new connection it accepted just then is
// closed unanswered (EOF or reset). Such a request was never handled, and a
// GET or a conditional write (If-Match) is safe to send again in any case
// (a write that did land makes the retry fail with 412), so those are
// retried a few times.
func (c *Client) do(ctx context.Context, method, path string, body []byte, ifMatch string) (response, error) {
	retry := method == http.MethodGet || ifMatch != ""
	for attempt := 0; ; attempt++ {
		resp, err := c.doOnce(ctx, method, path, body, ifMatch)
		if err == nil || !retry || attempt == 3 || !connectionDropped(err) || ctx.Err() != nil {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
}

// connectionDropped reports whether err is the admin connection closing
// before an answer.
func connectionDropped(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

func (c *Client) doOnce(ctx context.Context, method, path string, body []byte, ifMatch string) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return response{}, fmt.Errorf("caddy admin %s %s: %w", method, path, err)
	}
	if c.unix {
		// Caddy up to 2.9 accepts admin requests on a unix socket only with
		// an empty Host (RFC 9112 section 3.2: empty when the target URI has
		// no authority). net/http sends an empty Host header in place of an
		// invalid one ("/" is not a valid host byte), so this yields "Host: ".
		req.Host = "unix/socket"
	} else {
		// Caddy's own CLI sends Origin too, so that an admin endpoint with
		// enforce_origin accepts us.
		req.Header.Set("Origin", c.origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	if method != http.MethodGet {
		c.stats.writes.Add(1)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("caddy admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return response{}, fmt.Errorf("caddy admin %s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return response{}, &APIError{Method: method, Path: path, Status: resp.StatusCode, Body: string(b)}
	}
	return response{body: b, etag: resp.Header.Get("Etag")}, nil
}
