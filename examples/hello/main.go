// Command hello is jailkeeper's demo app and the process the integration
// tests deploy.
//
//	GET /              "Hello World!\n", nothing else, whatever the env says
//	                   (but HELLO_FAIL_EVERY, below)
//	GET /up            200 "ok" (the health endpoint)
//	GET /version       the version set at build time: -ldflags "-X main.version=v2"
//	GET /env/{name}    the value of GREETING, PORT, HOST or ADDR (no other name)
//	GET /sleep/{d}     sends the headers, sleeps d (at most 1m), then "slept d"
//
// It listens on $ADDR, or 127.0.0.1:$PORT, or 127.0.0.1:8080, and logs one
// line "hello VERSION listening on ADDR" to stderr once it accepts
// connections. SIGTERM or SIGINT stops it gracefully: it stops accepting,
// finishes the requests in flight (up to 30s) and exits 0.
//
// Switches for the failure tests:
//
//	HELLO_FAIL_UP=1                 /up answers 503 always
//	HELLO_FAIL_UP_AFTER=<duration>  /up answers 503 once that long has passed since start
//	HELLO_FAIL_UP_IF_FILE=<path>    /up answers 503 while path exists (relative
//	                                to the working directory: the release root),
//	                                as an app that breaks on a patched template
//	HELLO_FAIL_EVERY=<n>            every n-th request but /up answers 500 (a bad canary)
//
// `hello migrate` is the demo's migration (see migrate.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const (
	shutdownTimeout = 30 * time.Second
	maxSleep        = time.Minute
)

// exposed are the variables /env/{name} shows; secrets never are.
var exposed = map[string]bool{"GREETING": true, "PORT": true, "HOST": true, "ADDR": true}

// config is what the environment asks of the app.
type config struct {
	addr        string
	failUp      bool
	failUpAfter time.Duration // 0: never
	failUpIf    string        // a path; "": none
	failEvery   int64         // 0: never
	served      *atomic.Int64 // requests but /up, for failEvery
	getenv      func(string) string
	start       time.Time
	now         func() time.Time
}

func parseConfig(getenv func(string) string, now func() time.Time) (config, error) {
	c := config{getenv: getenv, now: now, start: now(), served: new(atomic.Int64)}
	switch {
	case getenv("ADDR") != "":
		c.addr = getenv("ADDR")
	case getenv("PORT") != "":
		c.addr = net.JoinHostPort("127.0.0.1", getenv("PORT"))
	default:
		c.addr = "127.0.0.1:8080"
	}
	if v := getenv("HELLO_FAIL_UP"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("HELLO_FAIL_UP=%q: %w", v, err)
		}
		c.failUp = b
	}
	if v := getenv("HELLO_FAIL_UP_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("HELLO_FAIL_UP_AFTER=%q: %w", v, err)
		}
		c.failUpAfter = d
	}
	c.failUpIf = getenv("HELLO_FAIL_UP_IF_FILE")
	if v := getenv("HELLO_FAIL_EVERY"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return c, fmt.Errorf("HELLO_FAIL_EVERY=%q: want a count of at least 1", v)
		}
		c.failEvery = n
	}
	return c, nil
}

// fileSays reports whether HELLO_FAIL_UP_IF_FILE names a path that exists.
func (c config) fileSays() bool {
	if c.failUpIf == "" {
		return false
	}
	_, err := os.Lstat(c.failUpIf)
	return err == nil
}

func newHandler(c config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello World!\n")
	})
	mux.HandleFunc("GET /up", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if c.failUp || (c.failUpAfter > 0 && c.now().Sub(c.start) >= c.failUpAfter) || c.fileSays() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "failing on purpose")
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, version)
	})
	mux.HandleFunc("GET /env/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !exposed[name] {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, c.getenv(name))
	})
	mux.HandleFunc("GET /sleep/{d}", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.PathValue("d"))
		if err != nil || d < 0 || d > maxSleep {
			http.Error(w, "want a duration up to 1m", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fmt.Fprintf(w, "slept %s", d)
		case <-r.Context().Done():
		}
	})
	if c.failEvery == 0 {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/up" && c.served.Add(1)%c.failEvery == 0 {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, c config, stderr io.Writer) error {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newHandler(c), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "hello %s listening on %s\n", version, ln.Addr())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintf(stderr, "hello %s stopped\n", version)
	return nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(migrate(os.Getenv, os.Stdout, os.Stderr))
	}
	c, err := parseConfig(os.Getenv, time.Now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, c, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
