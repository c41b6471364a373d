package agent

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

// maxHookBody bounds webhook bodies; push payloads are far smaller.
const maxHookBody = 1 << 20

// httpLimits bound what one client can hold of the agent's listener. The
// zero value of a field means its default (defaultHTTPLimits).
type httpLimits struct {
	// MaxConns bounds open connections: one more waits in the kernel's
	// accept queue, where it costs the agent no descriptor.
	MaxConns int
	// ReadHeader and Read bound reading a request's header and the whole
	// request, body included (a webhook body is at most maxHookBody).
	ReadHeader, Read time.Duration
	// Write bounds writing a response, from the end of the request's
	// header: /metrics and /status of a thousand services are a few
	// hundred KB, seconds even for a slow scraper.
	Write time.Duration
	// Idle closes a keep-alive connection that sends nothing.
	Idle time.Duration
}

// defaultHTTPLimits: the listener serves Prometheus, the CLI and webhooks,
// a few connections at a time.
var defaultHTTPLimits = httpLimits{
	MaxConns:   32,
	ReadHeader: 10 * time.Second,
	Read:       30 * time.Second,
	Write:      60 * time.Second,
	Idle:       60 * time.Second,
}

// withDefaults fills the zero fields of l from defaultHTTPLimits.
func (l httpLimits) withDefaults() httpLimits {
	d := defaultHTTPLimits
	if l.MaxConns > 0 {
		d.MaxConns = l.MaxConns
	}
	for _, f := range []struct{ dst, src *time.Duration }{
		{&d.ReadHeader, &l.ReadHeader}, {&d.Read, &l.Read}, {&d.Write, &l.Write}, {&d.Idle, &l.Idle},
	} {
		if *f.src > 0 {
			*f.dst = *f.src
		}
	}
	return d
}

// maxHeaderBytes bounds a request's header; the agent's requests are tiny.
const maxHeaderBytes = 64 << 10

type server struct {
	addr  string
	close func()
}

// serve starts the HTTP listener on cfg.Listen, with a.http's limits.
func (a *Agent) serve(ctx context.Context) (*server, error) {
	var secret []byte
	if a.cfg.WebhookSecretFile != "" {
		b, err := os.ReadFile(a.cfg.WebhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: webhook_secret_file: %w", ErrConfig, a.cfg.File, err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
		if len(secret) == 0 {
			return nil, fmt.Errorf("%w: %s: webhook_secret_file: %s is empty", ErrConfig, a.cfg.File, a.cfg.WebhookSecretFile)
		}
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	lim := a.http.withDefaults()
	ln = newLimitListener(ln, lim.MaxConns)
	hs := &http.Server{
		Handler:           a.Handler(secret),
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go func() { _ = hs.Serve(ln) }()
	return &server{addr: ln.Addr().String(), close: func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}}, nil
}

// Handler serves the agent's endpoints (DESIGN.md "HTTP"). secret
// authenticates /hooks/git; when it is empty the hook endpoint answers 404.
// Any other authenticated hook request (a push from any branch, say) starts
// a pass: a pass over an unmoved branch changes nothing. A wrong method gets
// 405 with an Allow header. Safe for concurrent use.
func (a *Agent) Handler(secret []byte) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{Registry: a.metrics.Registry}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st := a.Status()
		if st.Services == nil {
			st.Services = []reconcile.ServiceStatus{}
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "no pass has completed yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /sync", func(w http.ResponseWriter, _ *http.Request) {
		a.triggerBy(triggerSync)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, "pass triggered")
	})
	mux.HandleFunc("POST /hooks/git", func(w http.ResponseWriter, r *http.Request) {
		if len(secret) == 0 {
			http.Error(w, "webhook_secret_file is not configured", http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if !hookAuthorized(r.Header, body, secret) {
			a.log.Warn("webhook refused: missing or bad signature", "remote", r.RemoteAddr)
			http.Error(w, "missing or bad signature", http.StatusUnauthorized)
			return
		}
		// GitHub sends a signed ping when a hook is created: it proves the
		// secret matches and asks for nothing.
		if r.Header.Get("X-GitHub-Event") == "ping" {
			fmt.Fprintln(w, "pong")
			return
		}
		a.triggerBy(triggerWebhook)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, "pass triggered")
	})
	return mux
}

// hookAuthorized checks GitHub's and Gitea's X-Hub-Signature-256
// ("sha256=" and the hex HMAC-SHA256 of the body; Gitea sends it next to its
// own X-Gitea-Signature) or GitLab's X-Gitlab-Token (the secret itself).
// When X-Hub-Signature-256 is present it alone decides.
func hookAuthorized(h http.Header, body, secret []byte) bool {
	if sig := h.Get("X-Hub-Signature-256"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil || !strings.HasPrefix(sig, "sha256=") {
			return false
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	}
	if tok := h.Get("X-Gitlab-Token"); tok != "" {
		// Compare digests so the time taken says nothing about the
		// secret's length either.
		got, want := sha256.Sum256([]byte(tok)), sha256.Sum256(secret)
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	return false
}
