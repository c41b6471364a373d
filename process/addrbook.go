package process

import (
	"net/netip"
	"os"
	"path/filepath"

	"github.com/jailkeeper/jailkeeper/release"
)

// addrBook remembers the address each release's release.json records,
// with the file's stat, so that reserve, which must know every address in
// use, reads only the release.json files that changed since its last call
// instead of all of them (issue 11: during a change of 1,000 services,
// each create read and decoded 2,000 files under allocMu, and creates
// queued behind it while holding their parallel slots). A file replaced
// (every write is a rename: atomicfile) or touched is read again. Used
// under Runtime.allocMu only.
type addrBook struct {
	m map[string]bookEntry
	// reads counts release.json files read, for tests.
	reads int
}

type bookEntry struct {
	fi os.FileInfo
	ip netip.Addr
}

// used returns the addresses that the release.json files under root
// record, one per release directory, answering from the book where a
// file is unchanged. A release.json that cannot be read records none, as
// before the book: it is read again next time.
func (b *addrBook) used(p *Runtime) (map[netip.Addr]bool, error) {
	entries, err := os.ReadDir(p.cfg.Root)
	if err != nil {
		return nil, err
	}
	next := make(map[string]bookEntry, len(entries))
	used := make(map[netip.Addr]bool, len(entries))
	for _, e := range entries {
		if !e.IsDir() || release.ValidName(e.Name()) != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join(p.dir(e.Name()), releaseFile))
		if err != nil {
			continue // no release.json: nothing recorded (read would fail too)
		}
		if was, ok := b.m[e.Name()]; ok && unchanged(was.fi, fi) {
			next[e.Name()] = was
			used[was.ip] = true
			continue
		}
		b.reads++
		o, err := p.read(e.Name())
		if err != nil {
			continue
		}
		next[e.Name()] = bookEntry{fi: fi, ip: o.IP}
		used[o.IP] = true
	}
	b.m = next
	return used, nil
}
