package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/jailkeeper/jailkeeper/release"
)

// ErrNoUsers: the process runtime has no users to choose from, so `exec
// --root` means nothing there.
var ErrNoUsers = errors.New("the process runtime runs everything as the agent's user; there is no --root")

// Exec runs req.Argv in the release, as `jailkeeper exec` does: a child of
// the caller with its working directory in the release root and the
// environment the release's command has (PATH, the manifest's env, the env
// file's lines, then PORT, HOST and ADDR), wired to req's stdio. Argv[0]
// without a slash is looked up in the caller's PATH; with one it is taken
// relative to the release root. It waits for the child, which ctx kills.
//
// There is no isolation: the child runs as the caller's user and sees the
// host's file system, like the release's own command. req.Root is refused
// (ErrNoUsers). A release that is not running is refused too: exec is for
// the release that serves. The child's exit status comes back as an
// *exec.ExitError.
func (p *Runtime) Exec(ctx context.Context, name string, req release.ExecRequest) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if len(req.Argv) == 0 {
		return fmt.Errorf("exec in %s: empty command", name)
	}
	if req.Root {
		return fmt.Errorf("exec in %s: %w", name, ErrNoUsers)
	}
	cmd, err := p.execCommand(ctx, name, req)
	if err != nil {
		return fmt.Errorf("exec in %s: %w", name, err)
	}
	return cmd.Run()
}

// execCommand prepares the child of Exec.
func (p *Runtime) execCommand(ctx context.Context, name string, req release.ExecRequest) (*exec.Cmd, error) {
	r, err := p.read(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", release.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	running, err := p.running(name)
	if err != nil {
		return nil, err
	}
	if !running {
		return nil, fmt.Errorf("release is not running (state %s)", r.State)
	}
	dir := p.dir(name)
	b, err := os.ReadFile(filepath.Join(dir, specFile))
	if err != nil {
		return nil, err
	}
	var ps commandSpec
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", specFile, err)
	}
	env, err := releaseEnv(dir, r, ps)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
	cmd.Dir = filepath.Join(dir, rootDir)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = req.Stdin, req.Stdout, req.Stderr
	return cmd, nil
}

// releaseEnv is the environment of a release's command, for Start and
// Exec: PATH, then the manifest's env sorted by key, then the env file's
// lines, then DATA_<NAME> per data set, then PORT, HOST and ADDR (later
// ones win).
func releaseEnv(dir string, r release.Release, ps commandSpec) ([]string, error) {
	env := []string{"PATH=" + defaultPATH}
	keys := make([]string, 0, len(ps.Env))
	for k := range ps.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		// Checked at Create; a process.json from elsewhere is checked too.
		if err := release.ValidEnvKey(k); err != nil {
			return nil, fmt.Errorf("corrupt %s: env: %w", specFile, err)
		}
		env = append(env, k+"="+ps.Env[k])
	}
	switch b, err := os.ReadFile(filepath.Join(dir, envFile)); {
	case err == nil:
		lines, err := release.ParseEnvFile(b)
		if err != nil {
			return nil, fmt.Errorf("env file: %w", err)
		}
		env = append(env, lines...)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	for _, d := range ps.Data { // after the env file: jailkeeper's own
		env = append(env, release.DataEnv(d.Name)+"="+d.Dir)
	}
	return append(env,
		"PORT="+strconv.Itoa(r.Port),
		"HOST="+r.IP.String(),
		"ADDR="+r.Addr(),
	), nil
}
