package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// DefaultControlSocket is where the agent listens for suspend and resume
// (agent config control_socket).
const DefaultControlSocket = "/var/run/jailkeeper.sock"

// maxSocketPath bounds control_socket: a sockaddr_un's sun_path holds 104
// bytes on FreeBSD (4.4BSD's size; POSIX <sys/un.h> leaves it open), the
// last one a NUL. The socket is first bound at a temporary path in the
// same directory, socketTempExtra bytes longer than the directory.
const (
	maxSocketPath   = 103
	socketTempExtra = len("/.jk0123456789/s")
)

// SuspendRequest is the body of POST /suspend/{service} on the control
// socket.
type SuspendRequest struct {
	Reason string `json:"reason,omitempty"`
}

// ControlReply is the control socket's answer to suspend and resume.
type ControlReply struct {
	Service string `json:"service"`
	// Suspended is the service's state after the request; Changed says
	// whether the request changed it.
	Suspended bool                  `json:"suspended"`
	Changed   bool                  `json:"changed"`
	Since     *reconcile.Suspension `json:"suspension,omitempty"`
}

// checkControlSocket validates control_socket.
func checkControlSocket(p string) error {
	switch {
	case !filepath.IsAbs(p):
		return fmt.Errorf("%q is not an absolute path", p)
	case len(p) > maxSocketPath || len(filepath.Dir(p))+socketTempExtra > maxSocketPath:
		return fmt.Errorf("%q is too long for a unix socket: at most %d bytes, its directory at most %d", p, maxSocketPath, maxSocketPath-socketTempExtra)
	}
	return nil
}

// ControlHandler serves the control socket: POST /suspend/{service}
// (body SuspendRequest), POST /resume/{service}, GET /suspended. It is
// never served on the TCP listener: whoever may connect to the socket
// (root: it is mode 0600) may freeze a service. Safe for concurrent use.
func (a *Agent) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /suspend/{service}", func(w http.ResponseWriter, r *http.Request) {
		svc := r.PathValue("service")
		var req SuspendRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4*MaxSuspendReason)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			http.Error(w, "decode body: "+err.Error(), http.StatusBadRequest)
			return
		}
		changed, err := a.suspend.Suspend(svc, req.Reason, a.now())
		if err != nil {
			code := http.StatusInternalServerError
			if release.ValidService(svc) != nil || validReason(req.Reason) != nil {
				code = http.StatusBadRequest
			}
			http.Error(w, err.Error(), code)
			return
		}
		// A deploy of it before its switch is abandoned now, not when
		// it ends; the pass that follows plans it as suspended.
		a.exec.Suspended(svc)
		a.Trigger()
		sus, _ := a.suspend.Get(svc)
		if changed {
			a.log.Info("service suspended", "service", svc, "reason", sus.Reason)
		}
		writeJSON(w, ControlReply{Service: svc, Suspended: true, Changed: changed, Since: &sus})
	})
	mux.HandleFunc("POST /resume/{service}", func(w http.ResponseWriter, r *http.Request) {
		svc := r.PathValue("service")
		changed, err := a.suspend.Resume(svc)
		if err != nil {
			code := http.StatusInternalServerError
			if release.ValidService(svc) != nil {
				code = http.StatusBadRequest
			}
			http.Error(w, err.Error(), code)
			return
		}
		a.Trigger()
		if changed {
			a.log.Info("service resumed", "service", svc)
		}
		writeJSON(w, ControlReply{Service: svc, Changed: changed})
	})
	mux.HandleFunc("POST /rebase/resume", a.handleRebaseResume)
	mux.HandleFunc("GET /suspended", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, a.suspend.List())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// serveControl listens on the control socket. Connecting to a unix
// socket needs write access to its file (FreeBSD connect(2): EACCES
// "Write access to the named socket is denied"), so mode 0600 leaves it
// to the agent's user and root. The socket is bound in a fresh directory
// of mode 0700 beside its path, made 0600 there and then renamed into
// place, so it is never reachable with looser permissions (bind(2) makes
// it with the umask's, and the umask is the whole process's).
// A socket left at the path by an agent that died is replaced; one an
// agent still answers on is an error, as is anything at the path that is
// not a socket.
func (a *Agent) serveControl(ctx context.Context) (*server, error) {
	path := a.cfg.ControlSocket
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: control_socket: %w", ErrConfig, a.cfg.File, err)
	}
	hs := &http.Server{
		Handler:           a.ControlHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go func() { _ = hs.Serve(ln) }()
	info, _ := os.Lstat(path)
	return &server{addr: path, close: func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		// Remove the socket unless another agent has replaced it.
		if now, err := os.Lstat(path); err == nil && info != nil && os.SameFile(info, now) {
			_ = os.Remove(path)
		}
	}}, nil
}

// listenPrivate binds a unix socket at path with mode 0600 (see
// serveControl).
func listenPrivate(path string) (*net.UnixListener, error) {
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".jk")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // it is renamed; serveControl removes it
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// clearStaleSocket removes a socket at path that nobody answers on.
func clearStaleSocket(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s: another jailkeeper listens on it", path)
	}
	return os.Remove(path)
}
