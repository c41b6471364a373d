package zfs

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
)

// Client runs zfs(8) through a command.Runner: every command it runs is
// argv[0] "zfs" (looked up on PATH by command.Exec) and the arguments
// listed in the package doc, and nothing else. It is safe for concurrent
// use; ZFS itself serialises changes to one dataset. Methods validate
// names and properties first and return ErrInvalid without running
// anything when they are refused.
type Client struct {
	r        command.Runner
	delay    time.Duration // first wait between busy Destroy attempts
	maxDelay time.Duration // cap of the doubling wait
}

// New returns a Client that runs every command through r, with Destroy
// waiting 250ms, 500ms, ... (at most 4s) between busy attempts.
func New(r command.Runner) *Client {
	return &Client{r: r, delay: 250 * time.Millisecond, maxDelay: 4 * time.Second}
}

// WithDestroyBackoff returns a copy of c whose Destroy waits first, then
// twice as long each time up to max, between attempts on a busy dataset.
// Zero waits not at all (replay tests, fakes).
func (c *Client) WithDestroyBackoff(first, max time.Duration) *Client {
	cp := *c
	cp.delay, cp.maxDelay = first, max
	return &cp
}

// run runs `zfs args...` and returns its stdout. On failure it returns the
// runner's error (a *command.Error naming argv, exit status and stderr),
// classified with the sentinels, and never partial stdout.
func (c *Client) run(ctx context.Context, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, &command.Error{Argv: append([]string{"zfs"}, args...), Exit: -1, Err: err}
	}
	out, err := c.r.Run(ctx, append([]string{"zfs"}, args...), nil)
	if err != nil {
		return nil, classified(err)
	}
	return out, nil
}

// Names reach argv, so they are checked first. A component is what
// zfs(8) allows (alphanumerics, '_', '-', ':', '.') minus the space, and
// starts with an alphanumeric so that no name can be read as an option.
var (
	fsRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*$`)
	snapRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*@[A-Za-z0-9_.:-]+$`)
	// Property names: native ones are lowercase words, user ones contain a
	// colon and use lowercase letters, digits and ':', '+', '.', '_', '-'
	// (zfsprops(7), "User Properties").
	propRE = regexp.MustCompile(`^[a-z][a-z0-9:+._-]*$`)
)

// Limits from zfsprops(7), "User Properties": names up to 256 characters,
// values up to 8192 bytes.
const (
	maxPropName  = 256
	maxPropValue = 8192
)

func checkFS(name string) error {
	if !fsRE.MatchString(name) {
		return fmt.Errorf("%w: dataset name %q", ErrInvalid, name)
	}
	return nil
}

func checkSnap(name string) error {
	if !snapRE.MatchString(name) {
		return fmt.Errorf("%w: snapshot name %q (want DATASET@SNAP)", ErrInvalid, name)
	}
	return nil
}

func checkAny(name string) error {
	if checkFS(name) != nil && checkSnap(name) != nil {
		return fmt.Errorf("%w: name %q", ErrInvalid, name)
	}
	return nil
}

func checkPropName(k string) error {
	if len(k) > maxPropName || !propRE.MatchString(k) {
		return fmt.Errorf("%w: property name %q", ErrInvalid, k)
	}
	return nil
}

// checkProps refuses property names zfs would refuse and values that would
// break the one-row-per-property output of `zfs get -H` (a newline) or
// argv (a NUL).
func checkProps(props map[string]string) error {
	for k, v := range props {
		if err := checkPropName(k); err != nil {
			return err
		}
		if len(v) > maxPropValue || strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("%w: value of property %s: newline, NUL or longer than %d bytes", ErrInvalid, k, maxPropValue)
		}
	}
	return nil
}

// own returns the jailkeeper:* entries of props, never nil.
func own(props map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range props {
		if strings.HasPrefix(k, Prefix) {
			m[k] = v
		}
	}
	return m
}

// optionArgs returns "-o k=v" for the non-empty props, keys sorted.
//
// An empty value means "unset" throughout this package: zfs-fuse's
// `zfs set` refuses one ("missing value in property=value argument") and a
// reader of Props cannot tell it from an unset property anyway, so Create
// and Clone leave such properties unset and SetProps removes them.
func optionArgs(props map[string]string) []string {
	keys := make([]string, 0, len(props))
	for k, v := range props {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	args := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, "-o", k+"="+props[k])
	}
	return args
}
