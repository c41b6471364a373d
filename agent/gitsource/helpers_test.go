package gitsource

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// epoch is the committer time of the first commit a fixture makes; each
// further commit is one minute later.
var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a deploy repo as an operator has it: a bare "server" repository
// and a working clone that commits and pushes to it with the git CLI.
type fixture struct {
	t       testing.TB
	git     string
	bare    string
	work    string
	env     []string // isolated from the machine's git config
	commits int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, git: testenv.Command(t, "git")}
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	f.env = append(os.Environ(),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Dee Ploy",
		"GIT_AUTHOR_EMAIL=deploy@example.org",
		"GIT_COMMITTER_NAME=Dee Ploy",
		"GIT_COMMITTER_EMAIL=deploy@example.org",
		"GIT_TERMINAL_PROMPT=0",
	)
	f.bare = filepath.Join(root, "remote.git")
	f.work = filepath.Join(root, "work")
	f.run(root, "init", "--quiet", "--bare", "--initial-branch=main", f.bare)
	f.run(root, "init", "--quiet", "--initial-branch=main", f.work)
	f.run(f.work, "remote", "add", "origin", f.bare)
	return f
}

// run runs git in dir and returns its trimmed stdout.
func (f *fixture) run(dir string, args ...string) string {
	f.t.Helper()
	return f.runEnv(dir, nil, args...)
}

func (f *fixture) runEnv(dir string, env []string, args ...string) string {
	f.t.Helper()
	cmd := f.command(dir, args...)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		f.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// command is git with args in dir, in the fixture's environment.
func (f *fixture) command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(f.git, args...)
	cmd.Dir = dir
	cmd.Env = append([]string(nil), f.env...)
	return cmd
}

// write writes files (path -> content) into the working clone; "" deletes.
func (f *fixture) write(files map[string]string) {
	f.t.Helper()
	for name, content := range files {
		p := filepath.Join(f.work, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil {
				f.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

// nextDate is the committer date of the next commit, as git takes it.
func (f *fixture) nextDate() []string {
	when := epoch.Add(time.Duration(f.commits) * time.Minute)
	f.commits++
	d := fmt.Sprintf("@%d +0000", when.Unix())
	return []string{"GIT_AUTHOR_DATE=" + d, "GIT_COMMITTER_DATE=" + d}
}

// commit commits everything with extra `git commit` arguments (-S...) and
// returns the new head.
func (f *fixture) commit(msg string, extra ...string) string {
	f.t.Helper()
	f.run(f.work, "add", "--all")
	args := append([]string{"commit", "--quiet", "--allow-empty", "-m", msg}, extra...)
	f.runEnv(f.work, f.nextDate(), args...)
	return f.head()
}

func (f *fixture) head() string {
	f.t.Helper()
	return f.run(f.work, "rev-parse", "HEAD")
}

// push pushes main; force makes it a forced push.
func (f *fixture) push(force bool) {
	f.t.Helper()
	args := []string{"push", "--quiet", "origin", "main"}
	if force {
		args = append(args, "--force")
	}
	f.run(f.work, args...)
}

// commitTime is the committer time of the n-th commit the fixture made
// (0-based).
func commitTime(n int) time.Time { return epoch.Add(time.Duration(n) * time.Minute) }

// files reads every regular file of fsys into a map (symlinks left out).
func files(t testing.TB, fsys fs.FS) map[string]string {
	t.Helper()
	if fsys == nil {
		t.Fatal("snapshot has no FS")
	}
	m := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		m[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
