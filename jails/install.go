package jails

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/release"
)

// install puts the release's files into the clone mounted at its root, from
// the host, before the jail ever runs: the artifact, then the rc.d script,
// its rc.conf(5) variables (the service's, syslogd's and sendmail's: none
// runs), the newsyslog.conf.d entry and the environment.
//
// The host never runs or parses anything the artifact brought: the
// artifact can replace any file of the jail (etc/rc.conf included), so no
// host tool that sources rc.conf (sysrc(8) does, through sysrc.subr's
// f_sysrc_get) is pointed at the jail's files. The rc variables go, as
// fixed text written from Go, into /etc/rc.conf.d/<name>, which rc.subr's
// load_rc_config sources after /etc/rc.conf (libexec/rc/rc.subr), so they
// also win over whatever the artifact put into rc.conf. The one jail file
// read, /etc/passwd, is parsed in Go with a size limit.
//
// Every file is written through an os.Root on the jail's root, and no
// symbolic link is ever followed on the way (see jailWriteFile): a link the
// artifact planted where jailkeeper writes makes the create fail instead of
// redirecting the write.
func (f *FreeBSD) install(ctx context.Context, spec release.Spec, r release.Release) error {
	root := f.root(r.Name)
	if err := artifact.Install(ctx, spec.Artifact, root, spec.Command[0]); err != nil {
		return err
	}
	jr, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer jr.Close()
	rc := rcScript{RCName: rcName(jr, spec.Service), Service: spec.Service, Release: r.Name, User: spec.User, Command: spec.Command}

	// The environment file is root's, readable by the app user's group
	// (mode 0640): the app reads it (envLoader, after daemon -u) but cannot
	// change it, so a compromised app cannot plant variables for its next
	// start. The gid comes from the jail's own /etc/passwd, read here on
	// the host: the file has its final owner before the jail ever runs, and
	// no step inside the jail has to succeed later. The host's passwd could
	// map the name differently.
	_, gid, err := jailLookupUser(jr, spec.User)
	if err != nil {
		return err
	}
	env := map[string]string{}
	for k, v := range spec.Env {
		env[k] = v
	}
	if spec.EnvFile != "" {
		secrets, err := readJailEnvFile(spec.EnvFile)
		if err != nil {
			return err
		}
		for k, v := range secrets {
			env[k] = v
		}
	}
	for _, d := range spec.Data { // the mount point, as the process runtime passes its directory
		env[release.DataEnv(d.Name)] = d.Path
	}
	env["PORT"] = strconv.Itoa(r.Port)
	env["HOST"] = r.IP.String()
	env["ADDR"] = r.Addr()

	script, err := rc.render()
	if err != nil {
		return err
	}
	files := []struct {
		path     string // inside the jail
		data     []byte
		mode     fs.FileMode
		uid, gid int
	}{
		{rc.path(), script, 0o755, 0, 0},
		{rc.rcConfPath(), rc.rcConf(), 0o644, 0, 0},
		{jailRCConfD + "/syslogd", syslogdRCConf(), 0o644, 0, 0},
		{jailRCConfD + "/sendmail", sendmailRCConf(), 0o644, 0, 0},
		{rc.newsyslogPath(), rc.newsyslogLine(), 0o644, 0, 0},
		{rc.envFile(), renderJailEnv(spec.Service, spec.User, env), 0o640, 0, gid},
	}
	for _, fl := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := jailWriteFile(jr, fl.path, fl.data, fl.mode, fl.uid, fl.gid); err != nil {
			return err
		}
	}
	return nil
}

// rcName is the rc.d name of the service in its jail: the service name,
// unless the base system has an rc.d script of that name (a service called
// "cron" must not replace /etc/rc.d/cron's variables).
func rcName(jr *os.Root, service string) string {
	if _, err := jr.Lstat("etc/rc.d/" + service); err == nil {
		return "jailkeeper_" + service
	}
	return service
}

// jailWriteFile writes data to name (a path inside the jail, "/etc/x" or
// "etc/x") under jr with the given mode and owner, atomically: a temporary
// file in the same directory, created with O_EXCL (never opened through a
// link), then renamed over name, which replaces whatever is at name, a
// symbolic link included, without following it. Missing directories are
// created (0755, root's); a directory on the way that is a symbolic link,
// or not a directory, is an error naming it. os.Root keeps every step
// inside the jail's root whatever the links say.
func jailWriteFile(jr *os.Root, name string, data []byte, mode fs.FileMode, uid, gid int) (err error) {
	name = path.Clean(strings.TrimPrefix(name, "/"))
	if name == "." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("write %s: not a path inside the jail", name)
	}
	if err := jailMkdirs(jr, path.Dir(name)); err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	if fi, err := jr.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("write /%s: the release has a directory there", name)
	}
	tmp := path.Join(path.Dir(name), ".jailkeeper-"+path.Base(name)+".tmp")
	if err := jr.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	fh, err := jr.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	defer func() {
		if err != nil {
			fh.Close()
			jr.Remove(tmp)
		}
	}()
	if _, err := fh.Write(data); err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	// On the open file: the owner and mode are the file's from the start,
	// before it has its name.
	if err := fh.Chown(uid, gid); err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	if err := fh.Chmod(mode); err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	if err := jr.Rename(tmp, name); err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	return nil
}

// jailMkdirs makes dir (relative to jr) and its parents, each a real
// directory: a missing one is created with mode 0755; a symbolic link or a
// file is refused. Existing directories keep their mode and owner.
func jailMkdirs(jr *os.Root, dir string) error {
	if dir == "." {
		return nil
	}
	cur := ""
	for c := range strings.SplitSeq(dir, "/") {
		cur = path.Join(cur, c)
		fi, err := jr.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := jr.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("/%s is a symbolic link in the release: jailkeeper does not write through links", cur)
		case !fi.IsDir():
			return fmt.Errorf("/%s is not a directory in the release", cur)
		}
	}
	return nil
}

// maxPasswd bounds the jail's /etc/passwd read on the host.
const maxPasswd = 4 << 20

// jailLookupUser finds name in the jail's /etc/passwd (passwd(5), read on
// the host through jr) and returns its uid and gid. The file must be a
// regular file of at most maxPasswd bytes: it comes from the template or
// the artifact, and the host reads nothing else of theirs.
func jailLookupUser(jr *os.Root, name string) (uid, gid int, err error) {
	rel := strings.TrimPrefix(jailPasswd, "/")
	fi, err := jr.Stat(rel)
	if err != nil {
		return 0, 0, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxPasswd {
		return 0, 0, fmt.Errorf("the jail's %s is not a regular file of at most %d bytes", jailPasswd, maxPasswd)
	}
	fh, err := jr.Open(rel)
	if err != nil {
		return 0, 0, err
	}
	defer fh.Close()
	return lookupPasswd(io.LimitReader(fh, maxPasswd), name)
}

// lookupPasswd finds name in passwd(5) lines and returns its uid and gid.
func lookupPasswd(r io.Reader, name string) (uid, gid int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxPasswd)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] != name {
			continue
		}
		if uid, err = strconv.Atoi(f[2]); err != nil || uid < 0 {
			return 0, 0, fmt.Errorf("%s: user %s: uid %q", jailPasswd, name, f[2])
		}
		if gid, err = strconv.Atoi(f[3]); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("%s: user %s: gid %q", jailPasswd, name, f[3])
		}
		return uid, gid, nil
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", jailPasswd, err)
	}
	return 0, 0, fmt.Errorf("user %s is not in the jail's %s", name, jailPasswd)
}
