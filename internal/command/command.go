package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Runner runs one command. argv[0] is the program (looked up on PATH when it
// has no slash), the rest its arguments, never interpreted by a shell. stdin
// may be nil. Run returns what the command wrote to its standard output; when
// the command cannot start or exits non-zero the error is an *Error (use
// errors.As) and stdout holds whatever was written before it failed.
// Implementations must be safe for concurrent use.
type Runner interface {
	Run(ctx context.Context, argv []string, stdin io.Reader) (stdout []byte, err error)
}

// Error is a command that could not be started or exited non-zero.
type Error struct {
	// Argv is the command as run, program first.
	Argv []string
	// Exit is the exit status, or -1 when the command did not exit normally
	// (not found, killed by a signal or by its context).
	Exit int
	// Stderr is what the command wrote to its standard error.
	Stderr string
	// Err is the cause: an *exec.ExitError, exec.ErrNotFound, ctx.Err() ...
	Err error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s: exit %d: %s", Quote(e.Argv), e.Exit, msg)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit status of the command that failed with err, and
// false when err carries none (it is not an *Error, or the command did not
// exit normally).
func ExitCode(err error) (int, bool) {
	var ce *Error
	if errors.As(err, &ce) && ce.Exit >= 0 {
		return ce.Exit, true
	}
	return 0, false
}

// Stderr returns the standard error of the command that failed with err, or
// "" when err is not an *Error.
func Stderr(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Stderr
	}
	return ""
}

// maxStderr bounds the stderr kept in an Error: enough for any message the
// FreeBSD tools print, not a runaway log.
const maxStderr = 64 << 10

// Exec runs commands with exec.CommandContext. The zero value is ready to
// use and inherits the environment of the current process. Safe for
// concurrent use.
type Exec struct {
	// Env, when not nil, is the whole environment of every command.
	Env []string
}

// Run implements Runner. A cancelled ctx kills the command.
func (x Exec) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, &Error{Argv: argv, Exit: -1, Err: errors.New("empty argv")}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = x.Env
	cmd.Stdin = stdin
	var stdout bytes.Buffer
	stderr := &limitedBuffer{max: maxStderr}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return stdout.Bytes(), &Error{Argv: append([]string(nil), argv...), Exit: code, Stderr: stderr.String(), Err: err}
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }

// Quote renders argv as one line a POSIX shell would split back into the
// same words: words made only of safe characters stay bare, the others are
// single-quoted. It is for display (dry runs, transcripts, messages), never
// for running anything: text a shell will evaluate is built with
// ShellQuote.
func Quote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(QuoteWord(a))
	}
	return b.String()
}

// QuoteWord quotes one word for a POSIX shell (see Quote).
func QuoteWord(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func unsafeRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("@%+=:,./_-", r)
}

// ErrUnquotable is a word ShellQuote refuses: it holds a NUL or a newline.
var ErrUnquotable = errors.New("word cannot be shell-quoted")

// ShellQuote renders argv as text that a POSIX shell evaluating it (sh -c,
// eval, rc.subr's `eval "$command $rc_flags $command_args"`) splits back
// into exactly argv, with nothing expanded or run. Every word is put in
// single quotes, inside which sh(1) keeps every character literally except
// the single quote itself ("Single Quotes" in sh(1) and in POSIX XCU 2.2.2);
// a single quote is closed, written escaped and reopened:
//
//	[]string{"it's", "$HOME"}  ->  'it'\''s' '$HOME'
//
// Even plain words are quoted, so that none is ever read as an assignment,
// keyword, tilde or glob. An empty argv gives "".
//
// A word with a NUL (no argument of a process can hold one) or a newline is
// refused with ErrUnquotable naming its index: the text lands in
// line-oriented files (rc.d scripts, rc.conf.d) where a newline in an
// argument is a mistake or an attack, never something to pass on.
func ShellQuote(argv []string) (string, error) {
	var b strings.Builder
	for i, a := range argv {
		if strings.ContainsAny(a, "\x00\n") {
			return "", fmt.Errorf("%w: word %d contains a NUL or a newline", ErrUnquotable, i)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String(), nil
}
