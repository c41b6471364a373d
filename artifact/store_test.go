package artifact_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/artifact"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// server serves files by path on 127.0.0.1 and counts requests.
type server struct {
	*httptest.Server
	requests atomic.Int64
}

func newServer(t *testing.T, files map[string][]byte) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		switch {
		case r.URL.Path == "/chunked":
			// No Content-Length: the size limit must hold while reading.
			w.Header().Set("Content-Type", "application/octet-stream")
			for range 64 {
				w.Write([]byte(strings.Repeat("x", 1024)))
				w.(http.Flusher).Flush()
			}
		case r.URL.Path == "/hang":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			b, ok := files[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// allowed returns Options whose allowed prefixes hold the server: it is
// on loopback, refused otherwise.
func (s *server) allowed() artifact.Options {
	return artifact.Options{AllowedPrefixes: []string{s.URL + "/"}}
}

func newStore(t *testing.T, opts artifact.Options) (*artifact.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cache")
	s, err := artifact.NewStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFetchHTTPCaches(t *testing.T) {
	content := []byte("#!/bin/sh\necho hello\n")
	srv := newServer(t, map[string][]byte{"/hello": content})
	s, dir := newStore(t, srv.allowed())
	ctx := context.Background()

	p, err := s.Fetch(ctx, srv.URL+"/hello", sum(content))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, sum(content)); p != want {
		t.Errorf("path = %s, want %s", p, want)
	}
	if diff := cmp.Diff(content, readFile(t, p)); diff != "" {
		t.Errorf("content (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(artifact.Stats{Downloads: 1}, s.Stats()); diff != "" {
		t.Errorf("stats after download (-want +got):\n%s", diff)
	}

	// Upper-case sum, other URL: same cache entry, no request.
	p2, err := s.Fetch(ctx, srv.URL+"/elsewhere", strings.ToUpper(sum(content)))
	if err != nil {
		t.Fatal(err)
	}
	if p2 != p {
		t.Errorf("cached path = %s, want %s", p2, p)
	}
	if diff := cmp.Diff(artifact.Stats{Downloads: 1, Hits: 1}, s.Stats()); diff != "" {
		t.Errorf("stats after hit (-want +got):\n%s", diff)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}

	// A new Store on the same directory finds it too.
	s2, err := artifact.NewStore(dir, artifact.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Fetch(ctx, srv.URL+"/hello", sum(content)); err != nil {
		t.Fatal(err)
	}
	if got := s2.Stats(); got.Hits != 1 || got.Downloads != 0 {
		t.Errorf("new store stats = %+v, want one hit", got)
	}
}

func TestFetchFileURL(t *testing.T) {
	content := []byte("artifact bytes")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "sub", "hello.bin")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	// A link that stays inside the root is fine.
	if err := os.Symlink("sub/hello.bin", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"file://" + src,
		"file://localhost" + src,
		"file://" + dir + "/./sub//hello.bin",
		"file://" + dir + "/link",
	} {
		t.Run(u, func(t *testing.T) {
			s, _ := newStore(t, artifact.Options{FileRoot: dir + "/"})
			p, err := s.Fetch(context.Background(), u, sum(content))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(content, readFile(t, p)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFetchFileRoot: a file URL reads nothing outside Options.FileRoot, and
// nothing at all without it.
func TestFetchFileRoot(t *testing.T) {
	secret := []byte("host secret, e.g. /etc/shadow")
	outside := t.TempDir()
	secretPath := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secretPath, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	root := filepath.Join(parent, "artifacts")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// A sibling whose name starts with the root's.
	sibling := root + "-evil"
	if err := os.Mkdir(sibling, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sibling, "shadow"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secretPath, filepath.Join(root, "abs-link")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(root, "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "dir-link")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		fileRoot string
		url      string
		mention  string
	}{
		{"file root unset", "", "file://" + secretPath, "artifacts.file_root"},
		{"file root unset, path inside", "", "file://" + root + "/x", "artifacts.file_root"},
		{"outside", root, "file://" + secretPath, "not below artifacts.file_root"},
		{"sibling with the same prefix", root, "file://" + sibling + "/shadow", "not below"},
		{"the root itself", root, "file://" + root, "not below"},
		{"dot-dot", root, "file://" + root + "/../" + filepath.Base(outside) + "/shadow", `".."`},
		{"escaped dot-dot", root, "file://" + root + "/%2e%2e/x", `".."`},
		{"absolute symlink out", root, "file://" + root + "/abs-link", "escapes"},
		{"relative symlink out", root, "file://" + root + "/rel-link", "escapes"},
		{"directory symlink out", root, "file://" + root + "/dir-link/shadow", "escapes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newStore(t, artifact.Options{FileRoot: tt.fileRoot})
			p, err := s.Fetch(context.Background(), tt.url, sum(secret))
			if err == nil {
				t.Fatalf("Fetch = %s, want an error", p)
			}
			t.Log(err)
			if !errors.Is(err, artifact.ErrFetch) {
				t.Errorf("error %q is not ErrFetch", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("cache holds %v after a refused fetch", left)
			}
		})
	}

	if _, err := artifact.NewStore(t.TempDir(), artifact.Options{FileRoot: "relative/dir"}); err == nil {
		t.Error("NewStore accepted a relative FileRoot")
	}
}

// TestFetchChecksumErrorHidesActualSum: a mismatch never tells what the
// content's sum is, neither for a host file nor for a loopback URL.
func TestFetchChecksumErrorHidesActualSum(t *testing.T) {
	content := []byte("something only the agent can read")
	want := sum([]byte("what the manifest claims"))
	srv := newServer(t, map[string][]byte{"/a": content})
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{srv.URL + "/a", "file://" + root + "/a"} {
		t.Run(u, func(t *testing.T) {
			s, _ := newStore(t, artifact.Options{FileRoot: root, AllowedPrefixes: srv.allowed().AllowedPrefixes})
			_, err := s.Fetch(context.Background(), u, want)
			if !errors.Is(err, artifact.ErrChecksum) {
				t.Fatalf("Fetch error = %v, want ErrChecksum", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the expected sum", err)
			}
			if actual := sum(content); strings.Contains(err.Error(), actual) {
				t.Errorf("error %q tells the actual sum", err)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	content := []byte("the real artifact")
	other := []byte("something else")
	srv := newServer(t, map[string][]byte{"/a": content})
	src := filepath.Join(t.TempDir(), "a")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	fileOpts := artifact.Options{FileRoot: filepath.Dir(src)}
	if err := os.Mkdir(filepath.Join(fileOpts.FileRoot, "d"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		opts    artifact.Options
		url     string
		sum     string
		is      error
		mention []string
	}{
		{"checksum mismatch", artifact.Options{}, srv.URL + "/a", sum(other), artifact.ErrChecksum,
			[]string{sum(other)}},
		{"file checksum mismatch", fileOpts, "file://" + src, sum(other), artifact.ErrChecksum,
			[]string{sum(other)}},
		{"not a sum", artifact.Options{}, srv.URL + "/a", "abc", artifact.ErrChecksum, []string{`"abc"`}},
		{"404", artifact.Options{}, srv.URL + "/missing", sum(content), artifact.ErrFetch, []string{"404 Not Found"}},
		{"query redacted", artifact.Options{}, srv.URL + "/missing?token=s3cret", sum(content), artifact.ErrFetch, []string{"404"}},
		{"too large", artifact.Options{MaxSize: 4}, srv.URL + "/a", sum(content), artifact.ErrFetch, []string{"limit"}},
		{"too large chunked", artifact.Options{MaxSize: 1000}, srv.URL + "/chunked", sum(content), artifact.ErrFetch, []string{"limit"}},
		{"file too large", artifact.Options{MaxSize: 4, FileRoot: fileOpts.FileRoot}, "file://" + src, sum(content), artifact.ErrFetch, []string{"limit"}},
		{"timeout", artifact.Options{Timeout: 200 * time.Millisecond}, srv.URL + "/hang", sum(content), artifact.ErrFetch, []string{"deadline exceeded"}},
		{"missing file", fileOpts, "file://" + src + ".nope", sum(content), artifact.ErrFetch, []string{"no such file"}},
		{"relative file", artifact.Options{}, "file:a", sum(content), artifact.ErrFetch, []string{"absolute path"}},
		{"remote file", artifact.Options{}, "file://example.org/a", sum(content), artifact.ErrFetch, []string{"only local"}},
		{"scheme", artifact.Options{}, "ftp://127.0.0.1/a", sum(content), artifact.ErrFetch, []string{`"ftp"`}},
		{"directory", fileOpts, "file://" + fileOpts.FileRoot + "/d", sum(content), artifact.ErrFetch, []string{"not a regular file"}},
		{"connection refused", artifact.Options{}, "http://127.0.0.1:1/a", sum(content), artifact.ErrFetch, []string{"refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Under allowed prefixes: errors say what happened.
			tt.opts.AllowedPrefixes = []string{srv.URL + "/", "http://127.0.0.1:1/"}
			s, dir := newStore(t, tt.opts)
			p, err := s.Fetch(context.Background(), tt.url, tt.sum)
			if err == nil {
				t.Fatalf("Fetch = %s, want an error", p)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the URL's query", err)
			}
			left, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Errorf("cache holds %v after a failed fetch, want nothing", left)
			}
			if got := s.Stats(); got != (artifact.Stats{}) {
				t.Errorf("stats = %+v, want zero", got)
			}
		})
	}
}

func TestFetchReplacesCorruptCache(t *testing.T) {
	content := []byte("good")
	srv := newServer(t, map[string][]byte{"/a": content})
	s, _ := newStore(t, srv.allowed())
	if err := os.WriteFile(s.Path(sum(content)), []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := s.Fetch(context.Background(), srv.URL+"/a", sum(content))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(content, readFile(t, p)); diff != "" {
		t.Errorf("content (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(artifact.Stats{Downloads: 1}, s.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestFetchConcurrentDownloadsOnce(t *testing.T) {
	content := []byte(strings.Repeat("concurrent ", 10000))
	srv := newServer(t, map[string][]byte{"/a": content})
	s, _ := newStore(t, srv.allowed())
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Fetch(context.Background(), srv.URL+"/a", sum(content))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if diff := cmp.Diff(artifact.Stats{Downloads: 1, Hits: n - 1}, s.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("server saw %d requests, want 1", got)
	}
}

func TestNewStoreRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".fetch-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, sum([]byte("x")))
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := artifact.NewStore(dir, artifact.Options{}); err != nil {
		t.Fatal(err)
	}
	left, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	hidden, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if diff := cmp.Diff([]string{keep}, append(left, hidden...)); diff != "" {
		t.Errorf("files after NewStore (-want +got):\n%s", diff)
	}
}
