package artifact

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// DefaultCacheMax bounds, by default, the cached artifacts that no current
// manifest names.
const DefaultCacheMax = 2 << 30 // 2 GiB

// PruneResult says what Prune did.
type PruneResult struct {
	Removed []string // sums removed, least recently used first
	Freed   int64    // bytes
	Kept    int64    // bytes left in the cache, needed ones included
}

// Prune bounds the cache: it never removes an artifact whose sum is in
// keep (the sums the current manifests name: a release on disk has its
// artifact installed and needs nothing from the cache), and removes the
// others, least recently used first (Fetch marks a hit as a use), until
// those left take at most maxBytes. Downloads in progress and files whose
// names are not sums are left alone. Safe for concurrent use with Fetch:
// an artifact is removed under its sum's lock. On error the cache holds
// what was not yet removed.
func (s *Store) Prune(keep map[string]bool, maxBytes int64) (PruneResult, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune artifact cache: %w", err)
	}
	type entry struct {
		sum  string
		size int64
		used time.Time
	}
	var (
		res   PruneResult
		spare []entry
		total int64 // of spare
	)
	for _, e := range ents {
		if !sumRE.MatchString(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("prune artifact cache: %w", err)
		}
		if keep[e.Name()] {
			res.Kept += fi.Size()
			continue
		}
		spare = append(spare, entry{e.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	sort.Slice(spare, func(i, j int) bool { return spare[i].used.Before(spare[j].used) })
	for _, e := range spare {
		if total <= maxBytes {
			res.Kept += e.size
			continue
		}
		if err := s.remove(e.sum); err != nil {
			return res, fmt.Errorf("prune artifact cache: %w", err)
		}
		total -= e.size
		res.Freed += e.size
		res.Removed = append(res.Removed, e.sum)
	}
	return res, nil
}

// remove deletes the cached artifact sum under its lock.
func (s *Store) remove(sum string) error {
	l := s.lock(sum)
	l.Lock()
	defer l.Unlock()
	if err := os.Remove(filepath.Join(s.dir, sum)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
