package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/manifest"
)

// deployRepo is a bare deploy repo and a working clone, driven with the
// git CLI.
type deployRepo struct {
	t          *testing.T
	git        string
	bare, work string
	env        []string
}

func newDeployRepo(t *testing.T) *deployRepo {
	t.Helper()
	root := t.TempDir()
	r := &deployRepo{t: t, git: testenv.Command(t, "git"), bare: filepath.Join(root, "deploy.git"), work: filepath.Join(root, "work")}
	r.env = append(os.Environ(), "HOME="+root, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(root, "gitconfig"),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	r.run(root, nil, "init", "--quiet", "--bare", "--initial-branch=main", r.bare)
	r.run(root, nil, "init", "--quiet", "--initial-branch=main", r.work)
	r.run(r.work, nil, "remote", "add", "origin", r.bare)
	return r
}

func (r *deployRepo) run(dir string, stdin []byte, args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.git, args...)
	cmd.Dir, cmd.Env = dir, r.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// commit applies edit to the working clone, commits everything and pushes.
func (r *deployRepo) commit(edit func(work string)) string {
	r.t.Helper()
	edit(r.work)
	r.run(r.work, nil, "add", "--all")
	r.run(r.work, nil, "commit", "--quiet", "--allow-empty", "-m", "change")
	r.run(r.work, nil, "push", "--quiet", "origin", "main")
	return r.run(r.work, nil, "rev-parse", "HEAD")
}

func svcManifest(svc string) string {
	return fmt.Sprintf(`service: %s
sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact: {url: "https://ci.example.com/%s", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
hostnames: [%s.example.com]
port: 8080
`, svc, svc, svc)
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pollingAgent is an Agent with a deploy-repo source and nothing else: what
// poll needs.
func pollingAgent(t *testing.T, repo *deployRepo) *Agent {
	t.Helper()
	dir := t.TempDir()
	src, err := gitsource.New(gitsource.Config{URL: repo.bare, Branch: "main", Path: "services", Dir: filepath.Join(dir, "repo")})
	if err != nil {
		t.Fatal(err)
	}
	return &Agent{
		cfg:     &Config{File: "test.yaml", Host: "web1", Dir: dir},
		log:     slog.New(slog.DiscardHandler),
		source:  src,
		metrics: NewMetrics(),
		now:     time.Now,
		trigger: make(chan struct{}, 1),
	}
}

func serviceNames(t *testing.T, a *Agent, ctx context.Context) []string {
	t.Helper()
	d := a.poll(ctx)
	if d == nil {
		t.Fatal("poll: no desired state")
	}
	var names []string
	for _, s := range d.Services {
		names = append(names, s.Service)
	}
	return names
}

// TestUnreadableManifestNeverPrunes (issue 9 item 3): when bbb.yaml becomes
// a symlink, the agent keeps the last valid desired state (with bbb) and
// reports the same error as validate; before the fix it skipped the link,
// computed a desired state without bbb, and pruned bbb.
func TestUnreadableManifestNeverPrunes(t *testing.T) {
	repo := newDeployRepo(t)
	repo.commit(func(w string) {
		writeFile(t, filepath.Join(w, "services/aaa.yaml"), svcManifest("aaa"))
		writeFile(t, filepath.Join(w, "services/bbb.yaml"), svcManifest("bbb"))
	})
	a := pollingAgent(t, repo)
	if got := strings.Join(serviceNames(t, a, t.Context()), " "); got != "aaa bbb" {
		t.Fatalf("services = %q, want aaa bbb", got)
	}
	repo.commit(func(w string) {
		writeFile(t, filepath.Join(w, "elsewhere/bbb.yaml"), svcManifest("bbb"))
		os.Remove(filepath.Join(w, "services/bbb.yaml"))
		if err := os.Symlink("../elsewhere/bbb.yaml", filepath.Join(w, "services/bbb.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	if got := strings.Join(serviceNames(t, a, t.Context()), " "); got != "aaa bbb" {
		t.Errorf("services after bbb.yaml became a symlink = %q, want aaa bbb (the last valid state)", got)
	}
	_, validateErr := manifest.Load(os.DirFS(filepath.Join(repo.work, "services")), ".")
	if msg := a.Status().Error; validateErr == nil || !strings.Contains(msg, validateErr.Error()) {
		t.Errorf("status error = %q, want it to carry validate's %v", msg, validateErr)
	}
}

// TestSourceLimitKeepsLastGood (issue 9 item 1): a manifest directory over
// its limits is a source error, counted as one, and the last good desired
// state stays.
func TestSourceLimitKeepsLastGood(t *testing.T) {
	repo := newDeployRepo(t)
	repo.commit(func(w string) { writeFile(t, filepath.Join(w, "services/aaa.yaml"), svcManifest("aaa")) })
	a := pollingAgent(t, repo)
	if got := strings.Join(serviceNames(t, a, t.Context()), " "); got != "aaa" {
		t.Fatalf("services = %q, want aaa", got)
	}
	// manifest.MaxEntries+1 entries, all the same empty blob.
	empty := repo.run(repo.work, []byte{}, "hash-object", "-w", "--stdin")
	aaa := repo.run(repo.work, nil, "rev-parse", "HEAD:services/aaa.yaml")
	lines := []string{"100644 blob " + aaa + "\taaa.yaml"}
	for i := range manifest.MaxEntries {
		lines = append(lines, fmt.Sprintf("100644 blob %s\tf%05d", empty, i))
	}
	services := repo.run(repo.work, []byte(strings.Join(lines, "\n")+"\n"), "mktree")
	root := repo.run(repo.work, []byte("040000 tree "+services+"\tservices\n"), "mktree")
	c := repo.run(repo.work, nil, "commit-tree", root, "-p", "HEAD", "-m", "too many entries")
	repo.run(repo.work, nil, "push", "--quiet", "origin", c+":refs/heads/main")

	before := fetchErrors(t, a)
	if got := strings.Join(serviceNames(t, a, t.Context()), " "); got != "aaa" {
		t.Errorf("services = %q, want aaa (the last good state)", got)
	}
	if n := fetchErrors(t, a) - before; n != 1 {
		t.Errorf("jailkeeper_source_fetch_total{result=error} grew by %v, want 1", n)
	}
	if msg := a.Status().Error; !strings.Contains(msg, "more than") || !strings.Contains(msg, "entries") {
		t.Errorf("status error = %q, want the limit named", msg)
	}
}

func fetchErrors(t *testing.T, a *Agent) float64 {
	t.Helper()
	var m dto.Metric
	if err := a.metrics.fetchTotal.WithLabelValues("error").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
