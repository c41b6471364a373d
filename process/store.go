package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/release"
)

// List returns the releases under Root, sorted by name, with Running
// observed from their pidfiles. Directories that are not releases (no
// release.json, or a name that is not a release name) are skipped. A release
// whose release.json cannot be read is reported, not fatal: it is listed in
// state failed with the cause in Reason and no address.
func (p *Runtime) List(ctx context.Context) ([]release.Release, error) {
	entries, err := os.ReadDir(p.cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	var out []release.Release
	if len(entries) > 0 {
		out = make([]release.Release, 0, len(entries))
	}
	lr := p.listed.begin()
	defer p.listed.end(lr)
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() {
			continue
		}
		if _, known := lr.prev[e.Name()]; !known && release.ValidName(e.Name()) != nil {
			continue // a name List took before is valid
		}
		// Files are checked in turn, and read only when changed
		// (listCache, ListRounds).
		r, err, runErr := p.listOne(lr, i, e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			r = release.Release{
				Name:    e.Name(),
				Service: release.ServiceOf(e.Name()),
				State:   release.StateFailed,
				Reason:  err.Error(),
				Running: r.Running,
			}
		}
		if runErr != nil {
			return nil, fmt.Errorf("list releases: %w", runErr)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, nil // as before the capacity
	}
	return out, nil
}

// read returns the release.json of name; an error wrapping fs.ErrNotExist
// when there is none.
func (p *Runtime) read(name string) (release.Release, error) {
	b, err := os.ReadFile(filepath.Join(p.dir(name), releaseFile))
	if errors.Is(err, fs.ErrNotExist) {
		return release.Release{}, fmt.Errorf("release %s: %w: %w", name, release.ErrNotFound, err)
	}
	if err != nil {
		return release.Release{}, fmt.Errorf("release %s: %w", name, err)
	}
	var r release.Release
	if err := json.Unmarshal(b, &r); err != nil {
		return release.Release{}, fmt.Errorf("release %s: corrupt %s: %w", name, releaseFile, err)
	}
	if r.Name != name {
		return release.Release{}, fmt.Errorf("release %s: corrupt %s: it names %q", name, releaseFile, r.Name)
	}
	if !r.State.Valid() {
		return release.Release{}, fmt.Errorf("release %s: corrupt %s: state %q", name, releaseFile, r.State)
	}
	return r, nil
}

func (p *Runtime) write(r release.Release) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	defer p.listed.forget(r.Name)
	return atomicfile.WriteFile(filepath.Join(p.dir(r.Name), releaseFile), append(b, '\n'), 0o644)
}

// SetStatus records st in release.json, replacing the file atomically.
func (p *Runtime) SetStatus(ctx context.Context, name string, st release.Status) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if !st.State.Valid() {
		return fmt.Errorf("set status of %s: invalid state %q", name, st.State)
	}
	unlock := p.lock(name)
	defer unlock()
	r, err := p.read(name)
	if err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	r.State, r.Reason, r.Failures, r.FailedAt = st.State, st.Reason, st.Failures, st.FailedAt.UTC()
	if st.FailedAt.IsZero() {
		r.FailedAt = time.Time{}
	}
	r.StandbySince = time.Time{}
	if st.State == release.StateStandby {
		r.StandbySince = st.StandbySince.UTC()
	}
	if err := p.write(r); err != nil {
		return fmt.Errorf("set status of %s: %w", name, err)
	}
	return nil
}

// reserve picks r's address and creates its directory with release.json,
// under allocMu so that concurrent creates never share an address. An
// address is free when no release records it and nothing holds it with
// r's port (held: a bind probe). A process of an interrupted start that was
// never identified, or a stranger, keeps its address that way.
func (p *Runtime) reserve(r *release.Release) error {
	p.allocMu.Lock()
	defer p.allocMu.Unlock()
	used, err := p.book.used(p) // release.json files read only when new
	if err != nil {
		return err
	}
	port := strconv.Itoa(r.Port)
	nheld := 0
	ip, err := pickAddr(p.cfg.Pool, func(a netip.Addr) bool {
		if used[a] {
			return false
		}
		if held(net.JoinHostPort(a.String(), port)) {
			nheld++
			return false
		}
		return true
	})
	if err != nil && nheld > 0 {
		// Held by other processes (a listener on the wildcard address and
		// this port holds them all): say so, or the pool looks full.
		return fmt.Errorf("%w (%d addresses held by other processes on port %s)", err, nheld, port)
	}
	if err != nil {
		return err
	}
	r.IP = ip
	if err := os.Mkdir(p.dir(r.Name), 0o750); err != nil {
		return err
	}
	if err := p.write(*r); err != nil {
		return err
	}
	p.book.record(r.Name, ip)
	return nil
}

// pickAddr returns the lowest address of pool, after its first two,
// that is free.
func pickAddr(pool netip.Prefix, free func(netip.Addr) bool) (netip.Addr, error) {
	a := pool.Addr().Next().Next()
	for ; a.IsValid() && pool.Contains(a); a = a.Next() {
		if free(a) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s", release.ErrPoolExhausted, pool)
}
