//go:build unix

package caddy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// FirstListenFD is the descriptor of the first socket RunWithListeners
// hands over; the server's listen address for it is "fd/3".
const FirstListenFD = 3

// RunWithListeners opens a TCP listening socket for each address, starts
// argv (Caddy) with them at descriptors 3, 4, ... (its config names them
// "fd/3", "fd/4"), passes on the signals a service manager sends, and
// returns when the command exits, with its exit status as an
// *exec.ExitError.
//
// Why: Caddy re-provisions on every admin write. When it binds an address
// itself, each reload binds a new SO_REUSEPORT socket and closes the old
// one, and connections still queued on the old socket are dropped (see
// BenchmarkRequestsLostAtSwitch). A socket Caddy inherits stays the same
// across reloads: Caddy makes each new listener from the same descriptor.
func RunWithListeners(addrs []string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("caddy run: no command")
	}
	if len(addrs) == 0 {
		return errors.New("caddy run: no listen address")
	}
	files := make([]*os.File, len(addrs))
	for i, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("caddy run: listen %s: %w", a, err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close() // f is a duplicate and keeps the socket
		if err != nil {
			return fmt.Errorf("caddy run: %s: %w", a, err)
		}
		defer f.Close()
		files[i] = f
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = files // descriptors 3, 4, ... in the child
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("caddy run: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			return err
		}
	}
}
