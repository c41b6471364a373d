package commandtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/command"
)

// Response is what a replayed command "prints" and how it exits.
type Response struct {
	Stdout []byte
	Stderr string
	Exit   int // 0: success; anything else makes Run return a *command.Error
}

// OK is a successful run that printed stdout.
func OK(stdout string) Response { return Response{Stdout: []byte(stdout)} }

// Fail is a run that exited with code and wrote stderr.
func Fail(code int, stderr string) Response { return Response{Exit: code, Stderr: stderr} }

// File is a successful run whose stdout is the content of the fixture file
// path; the test fails at once when it cannot be read.
func File(t testing.TB, path string) Response {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return Response{Stdout: b}
}

type rule struct {
	argv   []string // exact argv, or the prefix when prefix is set
	prefix bool
	resps  []Response
	next   int
}

// Replay is a command.Runner that records and replays. The zero value
// answers every command with success and empty stdout. Safe for concurrent
// use.
type Replay struct {
	mu    sync.Mutex
	rules []*rule
	calls []Call
}

// Call is one recorded command and the response it got.
type Call struct {
	Argv     []string
	Response Response
}

var _ command.Runner = (*Replay)(nil)

// On makes the commands whose argv equals argv answer with resps, one per
// call in order; the last one repeats. A later On for the same argv replaces
// the earlier one.
func (r *Replay) On(argv []string, resps ...Response) *Replay {
	return r.add(&rule{argv: slices.Clone(argv), resps: resps})
}

// OnPrefix is On for every command whose argv starts with prefix. Exact
// rules win over prefix rules; among prefix rules the longest prefix wins.
func (r *Replay) OnPrefix(prefix []string, resps ...Response) *Replay {
	return r.add(&rule{argv: slices.Clone(prefix), prefix: true, resps: resps})
}

func (r *Replay) add(n *rule) *Replay {
	if len(n.resps) == 0 {
		n.resps = []Response{{}}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rules = slices.DeleteFunc(r.rules, func(o *rule) bool {
		return o.prefix == n.prefix && slices.Equal(o.argv, n.argv)
	})
	r.rules = append(r.rules, n)
	return r
}

// Run implements command.Runner: it records argv and returns the response
// of the matching rule. stdin is read to its end and dropped.
func (r *Replay) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	if stdin != nil {
		_, _ = io.Copy(io.Discard, stdin)
	}
	r.mu.Lock()
	resp := r.match(argv)
	r.calls = append(r.calls, Call{Argv: slices.Clone(argv), Response: resp})
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, &command.Error{Argv: slices.Clone(argv), Exit: -1, Err: err}
	}
	if resp.Exit != 0 {
		return resp.Stdout, &command.Error{
			Argv:   slices.Clone(argv),
			Exit:   resp.Exit,
			Stderr: resp.Stderr,
			Err:    fmt.Errorf("exit status %d", resp.Exit),
		}
	}
	return resp.Stdout, nil
}

// match finds the rule for argv and consumes one of its responses.
func (r *Replay) match(argv []string) Response {
	var best *rule
	for _, n := range r.rules {
		switch {
		case !n.prefix && slices.Equal(n.argv, argv):
			best = n
		case n.prefix && len(argv) >= len(n.argv) && slices.Equal(n.argv, argv[:len(n.argv)]):
			if best == nil || (best.prefix && len(n.argv) > len(best.argv)) {
				best = n
			}
		default:
			continue
		}
		if !best.prefix {
			break
		}
	}
	if best == nil {
		return Response{}
	}
	resp := best.resps[best.next]
	if best.next < len(best.resps)-1 {
		best.next++
	}
	return resp
}

// Calls returns the commands run so far, in order.
func (r *Replay) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Transcript renders the commands run so far, one per line, quoted as a
// shell would need them; a failed command is followed by "  # exit N".
func (r *Replay) Transcript() string {
	var b strings.Builder
	for _, c := range r.Calls() {
		b.WriteString(command.Quote(c.Argv))
		if c.Response.Exit != 0 {
			fmt.Fprintf(&b, "  # exit %d", c.Response.Exit)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Reset forgets the recorded calls; the rules stay.
func (r *Replay) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}
