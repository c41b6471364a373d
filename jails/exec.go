package jails

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/jailkeeper/jailkeeper/release"
)

// ErrNotRunning: exec needs a running jail.
var ErrNotRunning = errors.New("release is not running")

// Exec runs req.Argv in the release's jail with the caller's stdio, as
// `jailkeeper exec` does: jexec as the app's user, or as the jail's root
// when req.Root (the caller has checked policy.root_exec). The argv is
// jexecArgv's; it goes to cfg.Attach, not the Runner, since the command
// is interactive. The command's exit status comes back as the Attach
// error (an *exec.ExitError by default). A jail that is not running is
// ErrNotRunning.
//
// The app's user is the one the release's rc.d script hands to daemon -u
// (appUser). The environment is a clean one (see attachExec), not the
// app's: the app's variables, secrets included, stay in the env file.
func (f *FreeBSD) Exec(ctx context.Context, name string, req release.ExecRequest) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if len(req.Argv) == 0 {
		return fmt.Errorf("exec in %s: empty command", name)
	}
	running, err := f.running(ctx, name)
	if err != nil {
		return fmt.Errorf("exec in %s: %w", name, err)
	}
	if !running {
		return fmt.Errorf("exec in %s: %w", name, ErrNotRunning)
	}
	user := "root"
	if !req.Root {
		if user, err = f.appUser(name); err != nil {
			return fmt.Errorf("exec in %s: %w", name, err)
		}
	}
	attach := f.cfg.Attach
	if attach == nil {
		attach = attachExec
	}
	return attach(ctx, jexecArgv(name, user, req.Argv), req.Stdin, req.Stdout, req.Stderr)
}

// jexecArgv is the command line of Exec. jexec(8): -U names a user of the
// jail's own passwd, where -u would look the name up on the host (the
// default), whose www may have another uid than the jail's; jexec then
// sets the user's groups and login class (setusercontext) after
// jail_attach and chdir("/") (usr.sbin/jexec/jexec.c). The jail is named
// by its name, the release's, as in jail.conf.
//
// Not -l: with a user, jexec -l also changes into the user's home
// directory and exits 1 when it cannot ("chdir: %s" in jexec.c), and www's
// home in the base system's passwd is /nonexistent. jexec's -d, which
// would override that, is not in every jexec(8). The clean environment -l
// would give is made by attachExec instead.
func jexecArgv(jail, user string, argv []string) []string {
	return append([]string{"jexec", "-U", user, jail}, argv...)
}

// attachExec runs argv with the given stdio and waits for it. The
// environment is jexecEnv's, not jailkeeper's own: the host root's
// variables (SSH_AUTH_SOCK, a sudo's, a token exported in the shell) do
// not belong in a jail.
func attachExec(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = jexecEnv(os.Getenv("TERM"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	return cmd.Run()
}

// jexecEnv is the environment jexec starts with: what jexec -l keeps
// (PATH=/bin:/usr/bin and TERM); jexec's setusercontext then sets the
// login class's PATH and variables (LOGIN_SETPATH, LOGIN_SETENV), and jexec
// HOME, USER and SHELL from the jail's passwd.
func jexecEnv(term string) []string {
	env := []string{"PATH=/bin:/usr/bin"}
	if term != "" {
		env = append(env, "TERM="+term)
	}
	return env
}

// jailUserRE: a user name as the manifest allows one (manifest's user
// check), which daemon -u receives unquoted.
var jailUserRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// appUser reads the app's user from the release's rc.d script, the comment
// line that shows daemon(8)'s arguments (rcScript.render: "#   -f -r -P
// ... -u USER ..."). The script is the one install wrote, root's in the
// jail; only the jail's root could change it, and whatever it says is a
// user of the jail's passwd that jexec -U looks up inside the jail. It is
// read through an os.Root, like the log (see OpenLog).
func (f *FreeBSD) appUser(name string) (string, error) {
	jr, err := os.OpenRoot(f.root(name))
	if err != nil {
		return "", err
	}
	defer jr.Close()
	rc := rcScript{RCName: rcName(jr, release.ServiceOf(name))}
	fl, err := openRegular(jr, rc.path())
	if err != nil {
		return "", fmt.Errorf("app user: %w", err)
	}
	defer fl.Close()
	sc := bufio.NewScanner(io.LimitReader(fl, 1<<20))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "#   -f -r -P ")
		if !ok {
			continue
		}
		w := strings.Fields(rest)
		for i := 0; i+1 < len(w); i++ {
			if w[i] == "-u" && jailUserRE.MatchString(w[i+1]) {
				return w[i+1], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("app user: %s: %w", rc.path(), err)
	}
	return "", fmt.Errorf("app user: %s: no daemon -u line", rc.path())
}
