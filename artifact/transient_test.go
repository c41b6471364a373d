package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// transientServer answers /status/N with status N, /a with content, /hang
// never, and everything else 404, on loopback.
func transientServer(t *testing.T, content []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/a":
			w.Write(content)
		case r.URL.Path == "/hang":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case strings.HasPrefix(r.URL.Path, "/status/"):
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
			w.WriteHeader(code)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// closedURL is an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestFetchTransient: under an allowed prefix, the failures that a later
// try may cure (the store down, slow or overloaded, the artifact not yet
// published) are ErrTransient; those it cannot (a checksum mismatch, a
// refusal, a limit, a bad URL) are not. The message still says which.
func TestFetchTransient(t *testing.T) {
	content := []byte("the artifact")
	srv := transientServer(t, content)
	closed := closedURL(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		url       string
		sum       string
		transient bool
		mention   string
	}{
		{"connection refused", closed + "/a", hexSum(content), true, "refused"},
		{"timeout", srv.URL + "/hang", hexSum(content), true, "deadline exceeded"},
		{"404", srv.URL + "/status/404", hexSum(content), true, "404"},
		{"408", srv.URL + "/status/408", hexSum(content), true, "408"},
		{"429", srv.URL + "/status/429", hexSum(content), true, "429"},
		{"500", srv.URL + "/status/500", hexSum(content), true, "500"},
		{"502", srv.URL + "/status/502", hexSum(content), true, "502"},
		{"503", srv.URL + "/status/503", hexSum(content), true, "503"},
		{"504", srv.URL + "/status/504", hexSum(content), true, "504"},
		{"missing file", "file://" + root + "/later", hexSum(content), true, "no such file"},
		{"checksum mismatch", srv.URL + "/a", strings.Repeat("0", 64), false, "sha256"},
		{"not a sum", srv.URL + "/a", "abc", false, "64 hex"},
		{"401", srv.URL + "/status/401", hexSum(content), false, "401"},
		{"403", srv.URL + "/status/403", hexSum(content), false, "403"},
		{"410", srv.URL + "/status/410", hexSum(content), false, "410"},
		{"too large", srv.URL + "/a", hexSum(content), false, "limit"},
		{"scheme", "ftp://127.0.0.1/a", hexSum(content), false, `"ftp"`},
		{"file outside the root", "file:///etc/hostname", hexSum(content), false, "not below"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{AllowedPrefixes: []string{srv.URL + "/", closed + "/"}, FileRoot: root, Timeout: 300 * time.Millisecond}
			if tt.name == "too large" {
				opts.MaxSize = 4
			}
			s, err := NewStore(filepath.Join(t.TempDir(), "cache"), opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Fetch(context.Background(), tt.url, tt.sum)
			if err == nil {
				t.Fatal("Fetch succeeded, want an error")
			}
			if got := errors.Is(err, ErrTransient); got != tt.transient {
				t.Errorf("errors.Is(%q, ErrTransient) = %v, want %v", err, got, tt.transient)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

// TestFetchOpaqueIsOneClass: outside the allowed prefixes every failure is
// one message and one class, transient: a checksum mismatch (the store
// answered) must back off exactly as a refused connection does, or the
// retry schedule in /status would tell an open port from a closed one.
func TestFetchOpaqueIsOneClass(t *testing.T) {
	content := []byte("the artifact")
	srv := transientServer(t, content)
	closed := closedURL(t)
	tests := []struct{ name, url, sum string }{
		{"refused", closed + "/a", hexSum(content)},
		{"503", srv.URL + "/status/503", hexSum(content)},
		{"403", srv.URL + "/status/403", hexSum(content)},
		{"checksum mismatch", srv.URL + "/a", strings.Repeat("0", 64)},
		{"timeout", srv.URL + "/hang", hexSum(content)},
	}
	var first string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStore(filepath.Join(t.TempDir(), "cache"), Options{Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			s.internal = func(netip.Addr) bool { return false } // loopback plays a public host
			_, err = s.Fetch(context.Background(), tt.url, tt.sum)
			if !errors.Is(err, ErrTransient) || !errors.Is(err, ErrFetch) || errors.Is(err, ErrChecksum) {
				t.Errorf("Fetch = %v: want ErrFetch and ErrTransient, not ErrChecksum", err)
			}
			msg := strings.ReplaceAll(err.Error(), tt.url, "URL")
			if first == "" {
				first = msg
			} else if msg != first {
				t.Errorf("message %q differs from %q", msg, first)
			}
		})
	}
	// A loopback URL refused by the guard is the same class too.
	s, err := NewStore(filepath.Join(t.TempDir(), "cache"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(context.Background(), srv.URL+"/a", hexSum(content)); !errors.Is(err, ErrTransient) {
		t.Errorf("guard refusal = %v, want ErrTransient", err)
	}
}
