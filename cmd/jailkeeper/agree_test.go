package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/manifest"
)

// TestValidateAgreesWithAgent (issue 9): `jailkeeper validate` on a
// checkout and the agent on the same commit (gitsource, then LoadDesired)
// accept exactly the same repos, with the same services, and refuse the
// others with the same problems in the same files. The repos are random
// mixes, made with the git CLI, of valid and invalid manifests, symlinks,
// subdirectories, odd files (.yml, README, dot files, names that are not
// UTF-8, executables) and odd hostnames (wildcards, uppercase, trailing
// dots, placeholders, names shared by two services).
func TestValidateAgreesWithAgent(t *testing.T) {
	git := testenv.Command(t, "git")
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JK_AGREE_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (JK_AGREE_SEED=%d reproduces)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	const repos = 50
	accepted := 0
	for i := range repos {
		root := t.TempDir()
		work := filepath.Join(root, "work")
		files := genRepo(t, rng, work, i%4 == 0)
		gitRun(t, git, root, "init", "--quiet", "--initial-branch=main", work)
		gitRun(t, git, work, "add", "--all")
		gitRun(t, git, work, "commit", "--quiet", "--allow-empty", "-m", "generated")

		// validate, as the CLI runs it, on the checkout.
		dir := filepath.Join(work, "services")
		code, stdout, stderr := runCapture(t, "validate", dir)
		vOK := code == 0
		var vServices, vProblems []string
		for l := range strings.SplitSeq(strings.TrimSpace(stdout), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				vServices = append(vServices, f[0])
			}
		}
		if !vOK {
			for l := range strings.SplitSeq(strings.TrimSpace(stderr), "\n") {
				vProblems = append(vProblems, strings.TrimPrefix(l, dir+string(filepath.Separator)))
			}
		}

		// The agent on the same commit.
		src, err := gitsource.New(gitsource.Config{URL: work, Branch: "main", Path: "services", Dir: filepath.Join(root, "state", "repo")})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := src.Poll(context.Background())
		if err != nil {
			t.Fatalf("repo %d: Poll: %v", i, err)
		}
		d, err := agent.LoadDesired(snap.FS, manifest.Policy{}, "web1", filepath.Join(root, "secrets"), snap.Revision, snap.Time)
		aOK := err == nil
		var aServices, aProblems []string
		if aOK {
			for _, s := range d.Services {
				aServices = append(aServices, s.Service)
			}
		}
		var errs manifest.Errors
		switch {
		case errors.As(err, &errs):
			for _, e := range errs {
				aProblems = append(aProblems, e.Error())
			}
		case err != nil:
			aProblems = append(aProblems, err.Error())
		}

		if vOK != aOK || !slices.Equal(vServices, aServices) || !slices.Equal(vProblems, aProblems) {
			t.Errorf("repo %d (%s) disagrees:\nvalidate: ok=%v services=%q\n%s\nagent: ok=%v services=%q\n%s\nproblems (-validate +agent):\n%s",
				i, strings.Join(files, ", "), vOK, vServices, stderr, aOK, aServices, err, cmp.Diff(vProblems, aProblems))
		}
		if vOK {
			accepted++
		}
	}
	t.Logf("%d of %d repos accepted by both", accepted, repos)
	if accepted == 0 || accepted == repos {
		t.Errorf("%d of %d accepted: the generator must make both valid and invalid repos", accepted, repos)
	}
}

func gitRun(t *testing.T, git, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(git, args...)
	cmd.Dir = dir
	home := filepath.Dir(dir)
	cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(home, "gitconfig"),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
}

// genRepo writes a random deploy repo into work and returns what it wrote,
// for messages. A clean repo has valid manifests with distinct hostnames,
// and harmless odd files.
func genRepo(t *testing.T, rng *rand.Rand, work string, clean bool) []string {
	t.Helper()
	dir := filepath.Join(work, "services")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var made []string
	// git keeps no empty directory, and the agent treats a missing
	// manifest directory as a source error, not as no services.
	if err := os.WriteFile(filepath.Join(dir, ".keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(rel, content string, mode os.FileMode) {
		// A path that an earlier entry made impossible (a file where
		// a directory should be) is skipped.
		p := filepath.Join(work, rel)
		if os.MkdirAll(filepath.Dir(p), 0o755) != nil || os.WriteFile(p, []byte(content), mode) != nil {
			return
		}
		made = append(made, fmt.Sprintf("%q", rel))
	}
	hostnames := []string{"%s.example.com", "%s.example.com", "%s.example.com", "*.example.com", "%s.EXAMPLE.com",
		"%s.example.com.", "shared.example.com", "{http.request.host}", "%s?.example.com", "*"}
	svc := func(name string) string {
		h := hostnames[rng.IntN(len(hostnames))]
		if clean {
			h = "%s.example.com"
		}
		if strings.Contains(h, "%s") {
			h = fmt.Sprintf(h, strings.ReplaceAll(name, "_", "-"))
		}
		extra := []string{"", "", "", "user: root\n", "allow: [settime]\n", "allow: [set_hostname]\n",
			"command: [/usr/local/bin/app, \"a\\nb\"]\n", "port: 80\n", "colour: blue\n"}[rng.IntN(9)]
		if clean {
			extra = []string{"", "allow: [set_hostname]\n", "drain: 0s\n"}[rng.IntN(3)]
		}
		port := "port: 8080\n"
		if strings.HasPrefix(extra, "port:") {
			port = ""
		}
		return fmt.Sprintf("service: %s\nsha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nartifact: {url: \"https://ci.example.com/%s\", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\nhostnames: [%q]\n%s%s",
			name, name, h, port, extra)
	}
	names := []string{"aaa", "bbb", "ccc", "ddd", "eee", "fff"}
	for n := 1 + rng.IntN(6); n > 0; n-- {
		name := names[rng.IntN(len(names))]
		kind := rng.IntN(16)
		if clean {
			kind = []int{0, 6, 7, 9, 11}[rng.IntN(5)]
		}
		switch kind {
		case 0, 1, 2, 3, 4, 5:
			write("services/"+name+".yaml", svc(name), 0o644)
		case 6:
			write("services/"+name+".yml", svc(name), 0o644)
		case 7:
			write("services/"+name+".yaml", svc(name), 0o755)
		case 8:
			write("services/"+name+".yaml", "service: [\n", 0o644)
		case 9:
			write("services/README.md", "not a manifest\n", 0o644)
			write("services/.draft.yaml", "service: [\n", 0o644)
			write("services/notes.txt", svc(name), 0o644)
		case 10:
			write("elsewhere/"+name+".yaml", svc(name), 0o644)
			link := filepath.Join(dir, name+".yaml")
			os.Remove(link)
			if os.Symlink("../elsewhere/"+name+".yaml", link) == nil {
				made = append(made, "symlink services/"+name+".yaml")
			}
		case 11:
			write("services/sub/"+name+".yaml", "service: [\n", 0o644)
		case 12:
			write("services/"+name+".yaml/inner.yaml", svc(name), 0o644)
		case 13:
			write("services/caf\xe9.yaml", svc("cafe"), 0o644)
		case 14:
			write("services/"+name+".yaml", svc("zzz"), 0o644) // service is not the file name
		case 15:
			write("services/"+name+"_x.yaml", svc(name+"_x"), 0o644)
		}
	}
	return made
}
