package process

import (
	"net/netip"
	"os"

	"github.com/jailkeeper/jailkeeper/release"
)

// addrBook remembers the address each release's release.json records, so
// that reserve, which must know every address in use, reads only the
// release.json of releases it has not seen instead of all of them (issue
// 11: during a change of 1,000 services, each create read and decoded
// 2,000 files under allocMu, and creates queued behind it while holding
// their parallel slots). A release's address never changes once reserve
// picked it: every later write of release.json (SetStatus, the end of
// Create) keeps it, and reserve, the only place an address is chosen,
// records its choice. A release whose directory is gone leaves the book.
// Used under Runtime.allocMu only.
type addrBook struct {
	m map[string]netip.Addr
	// reads counts release.json files read, for tests.
	reads int
}

// used returns the addresses that the releases under root record,
// answering from the book for the releases it knows. A release.json that
// cannot be read records none, as before the book: it is read again next
// time.
func (b *addrBook) used(p *Runtime) (map[netip.Addr]bool, error) {
	entries, err := os.ReadDir(p.cfg.Root)
	if err != nil {
		return nil, err
	}
	next := make(map[string]netip.Addr, len(entries))
	used := make(map[netip.Addr]bool, len(entries))
	for _, e := range entries {
		if !e.IsDir() || release.ValidName(e.Name()) != nil {
			continue
		}
		ip, ok := b.m[e.Name()]
		if !ok {
			b.reads++
			o, err := p.read(e.Name())
			if err != nil {
				continue
			}
			ip = o.IP
		}
		next[e.Name()] = ip
		used[ip] = true
	}
	b.m = next
	return used, nil
}

// record notes the address reserve chose for release name.
func (b *addrBook) record(name string, ip netip.Addr) {
	if b.m == nil {
		b.m = map[string]netip.Addr{}
	}
	b.m[name] = ip
}
