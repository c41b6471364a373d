package gitsource

import (
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// gitHTTPS serves the fixture's bare repository with git's own smart-HTTP
// server, git-http-backend(1), behind TLS and basic auth that wants token
// as the password, like a forge.
type gitHTTPS struct {
	srv *httptest.Server
	ca  []byte

	mu    sync.Mutex
	token string
	users []string // basic-auth usernames seen
}

func newGitHTTPS(t *testing.T, f *fixture, token string) *gitHTTPS {
	t.Helper()
	backend := filepath.Join(f.run(f.work, "--exec-path"), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		testenv.Need(t, "git-http-backend: %v", err)
	}
	g := &gitHTTPS{token: token}
	cgiHandler := &cgi.Handler{
		Path:       backend,
		Env:        []string{"GIT_PROJECT_ROOT=" + filepath.Dir(f.bare), "GIT_HTTP_EXPORT_ALL=1"},
		InheritEnv: []string{"PATH"},
	}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		g.mu.Lock()
		good := ok && pass == g.token
		if ok {
			g.users = append(g.users, user)
		}
		g.mu.Unlock()
		if !good {
			w.Header().Set("WWW-Authenticate", `Basic realm="deploy"`)
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		cgiHandler.ServeHTTP(w, r)
	}))
	// The last step of the test is a refused certificate: keep its
	// handshake error out of the output.
	g.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	g.srv.StartTLS()
	t.Cleanup(g.srv.Close)
	g.ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.srv.Certificate().Raw})
	return g
}

func (g *gitHTTPS) setToken(tok string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.token = tok
}

func (g *gitHTTPS) seenUsers() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.users...)
}

// TestPollHTTPSToken: the token is read from the file on every Poll (a
// rotated token is picked up) and sent as basic auth; a refused token keeps
// the last good commit.
func TestPollHTTPSToken(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.commit("hello v1")
	f.push(false)
	srv := newGitHTTPS(t, f, "tok-1")
	url := srv.srv.URL + "/" + filepath.Base(f.bare)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken := func(tok string) {
		t.Helper()
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeToken("tok-1")
	v1 := map[string]string{"hello.yaml": helloV1}

	s := newSource(t, Config{URL: url, TokenFile: tokenFile})
	s.caBundle = srv.ca
	checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true, files: v1,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
	checkPoll(t, s, want{rev: c1, time: commitTime(0), files: v1,
		stats: Stats{Polls: 2, Lists: 2, Fetches: 1}})
	for _, u := range srv.seenUsers() {
		if u != defaultTokenUser {
			t.Errorf("basic-auth user %q, want %q", u, defaultTokenUser)
		}
	}

	// The forge rotates the token: refused until the file has the new one.
	srv.setToken("tok-2")
	f.write(map[string]string{"services/hello.yaml": helloV2})
	c2 := f.commit("hello v2")
	f.push(false)
	_ = checkPoll(t, s, want{rev: c1, time: commitTime(0), files: v1, err: ErrUnreachable,
		stats: Stats{Polls: 3, Lists: 2, Fetches: 1}})
	_, err := s.Poll(t.Context())
	if !errors.Is(err, transport.ErrAuthenticationRequired) {
		t.Errorf("Poll error = %v, want it to wrap %v", err, transport.ErrAuthenticationRequired)
	}
	writeToken("tok-2")
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: true,
		files: map[string]string{"hello.yaml": helloV2},
		stats: Stats{Polls: 5, Lists: 3, Fetches: 2}})

	// The URL's user is the basic-auth username.
	withUser := strings.Replace(url, "https://", "https://oauth2@", 1)
	s = newSource(t, Config{URL: withUser, TokenFile: tokenFile})
	s.caBundle = srv.ca
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: true,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
	users := srv.seenUsers()
	if last := users[len(users)-1]; last != "oauth2" {
		t.Errorf("basic-auth user %q, want oauth2 from the URL", last)
	}

	// Without the CA, the server's certificate is not trusted.
	s = newSource(t, Config{URL: url, TokenFile: tokenFile})
	pollErr(t, s, ErrUnreachable, "certificate")
}
