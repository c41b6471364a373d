package artifact

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
)

// transientError marks err as ErrTransient without changing its text.
type transientError struct{ err error }

func (e *transientError) Error() string        { return e.err.Error() }
func (e *transientError) Unwrap() error        { return e.err }
func (e *transientError) Is(target error) bool { return target == ErrTransient }

func transient(err error) error { return &transientError{err: err} }

// classify returns err, marked ErrTransient when cause (a transport error)
// is one a later try may cure: a refused or reset connection, a timeout, a
// connection cut short, an unreachable network, a DNS lookup that timed out
// or failed for now. The guard's refusal of an internal address is not:
// the URL leads there on every try (and outside the allowed prefixes Fetch
// hides the difference anyway).
func classify(err, cause error) error {
	if transientCause(cause) {
		return transient(err)
	}
	return err
}

func transientCause(err error) bool {
	if errors.Is(err, errInternal) {
		return false
	}
	for _, e := range []error{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.ETIMEDOUT, syscall.EPIPE,
		context.DeadlineExceeded, io.ErrUnexpectedEOF, io.EOF,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsTimeout || dns.IsTemporary
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transientStatus reports whether an HTTP status may change on a later
// try: a server error, 408, 425, 429, and 404, since CI often publishes
// the artifact after the commit that names it.
func transientStatus(code int) bool {
	switch code {
	case http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 && code <= 599
}
