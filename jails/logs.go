package jails

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/jailkeeper/jailkeeper/release"
)

// OpenLog opens the app log of the release, /var/log/<rcname>.log inside
// its jail (the file daemon(8) -o appends to, see rcScript), for reading on
// the host, as `jailkeeper logs` does. A log not written yet is an error
// wrapping fs.ErrNotExist.
//
// The jail's root user owns every file of the jail, /var/log included, and
// may replace the log with a symbolic link to /etc/master.passwd or a FIFO
// while the host's root reads it. So the file is opened through an os.Root
// on the jail's root: no link, absolute or with "..", leads out of it. It
// is opened non-blocking (a FIFO would block the open until a writer came)
// and anything but a regular file is refused.
func (f *FreeBSD) OpenLog(ctx context.Context, name string) (*os.File, error) {
	if err := release.ValidName(name); err != nil {
		return nil, err
	}
	jr, err := os.OpenRoot(f.root(name))
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	defer jr.Close()
	rc := rcScript{RCName: rcName(jr, release.ServiceOf(name))}
	fl, err := openRegular(jr, rc.logfile())
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	return fl, nil
}

// ConsoleLog is the host path of the release's console log: what jail(8)
// wrote while it ran exec.start (/etc/rc) and exec.stop
// (exec.consolelog). The host writes it, not the jail.
func (f *FreeBSD) ConsoleLog(name string) (string, error) {
	if err := release.ValidName(name); err != nil {
		return "", err
	}
	return f.consoleLog(name), nil
}

// openRegular opens name ("/var/log/x" or "var/log/x") under jr for
// reading, refusing anything but a regular file.
func openRegular(jr *os.Root, name string) (*os.File, error) {
	for len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	fl, err := jr.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := fl.Stat()
	if err != nil {
		fl.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		fl.Close()
		return nil, fmt.Errorf("/%s: not a regular file (%s)", name, fi.Mode().Type())
	}
	return fl, nil
}
