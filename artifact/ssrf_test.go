package artifact_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/artifact"
)

// TestFetchRefusesInternalTargets: an artifact URL must not reach the
// agent's own network (issue 9, item 8): loopback targets, by address or
// by a name that resolves to one, and redirects to them are refused before
// a request reaches them, unless the URL is under an allowed prefix.
func TestFetchRefusesInternalTargets(t *testing.T) {
	content := []byte("an internal service's answer")
	internal := newServer(t, map[string][]byte{"/a": content})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(internal.URL, "http://"))
	store := newServer(t, nil) // the allowed artifact store, redirecting
	store.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store.requests.Add(1)
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	allowed := artifact.Options{AllowedPrefixes: []string{store.URL + "/"}}

	tests := []struct {
		name string
		opts artifact.Options
		url  string
	}{
		{"loopback address", artifact.Options{}, internal.URL + "/a"},
		{"name resolving to loopback", artifact.Options{}, "http://localhost:" + port + "/a"},
		{"loopback prefix of another port", artifact.Options{AllowedPrefixes: []string{store.URL + "/"}}, internal.URL + "/a"},
		{"redirect to loopback", allowed, store.URL + "/r?to=" + internal.URL + "/a"},
		{"redirect to a name resolving to loopback", allowed, store.URL + "/r?to=http://localhost:" + port + "/a"},
		{"redirect to file", artifact.Options{AllowedPrefixes: allowed.AllowedPrefixes, FileRoot: "/"}, store.URL + "/r?to=file:///etc/hostname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := internal.requests.Load()
			s, _ := newStore(t, tt.opts)
			p, err := s.Fetch(context.Background(), tt.url, sum(content))
			if err == nil {
				t.Fatalf("Fetch = %s, want a refusal", p)
			}
			if !errors.Is(err, artifact.ErrFetch) {
				t.Errorf("error %q is not ErrFetch", err)
			}
			if n := internal.requests.Load() - before; n != 0 {
				t.Errorf("the internal service saw %d requests, want none", n)
			}
		})
	}
}

// TestFetchAllowedPrefix: under an allowed prefix a loopback store works,
// redirects within the prefix too.
func TestFetchAllowedPrefix(t *testing.T) {
	content := []byte("the artifact")
	srv := newServer(t, map[string][]byte{"/artifacts/a": content})
	s, _ := newStore(t, artifact.Options{AllowedPrefixes: []string{srv.URL + "/artifacts/"}})
	if _, err := s.Fetch(context.Background(), srv.URL+"/artifacts/a", sum(content)); err != nil {
		t.Fatalf("Fetch under the allowed prefix: %v", err)
	}
	// The same host outside the prefix is an internal target like any other.
	before := srv.requests.Load()
	if _, err := s.Fetch(context.Background(), srv.URL+"/secret", sum([]byte("x"))); !errors.Is(err, artifact.ErrFetch) {
		t.Errorf("Fetch outside the prefix = %v, want ErrFetch", err)
	}
	if n := srv.requests.Load() - before; n != 0 {
		t.Errorf("a URL outside the prefix reached the server (%d requests)", n)
	}
}

func TestNewStoreAllowedPrefixes(t *testing.T) {
	for _, p := range []string{"127.0.0.1:8081/", "ftp://127.0.0.1/", "http:///x/", "http://u:p@127.0.0.1/", "http://127.0.0.1/?q", "http://127.0.0.1/#f", "http://127.0.0.1:8081.evil/"} {
		if _, err := artifact.NewStore(t.TempDir(), artifact.Options{AllowedPrefixes: []string{p}}); err == nil {
			t.Errorf("NewStore accepted the allowed prefix %q", p)
		}
	}
}
