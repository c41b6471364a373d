package manifest

import (
	"slices"
	"strconv"
	"sync"
)

// specHashes remembers the spec hashes computed lately. An agent pass
// asks for each service's SpecHash several times (install, plan,
// statuses), and encoding the spec as JSON (reflection, map keys sorted)
// and hashing it was a fifth of an idle pass at 1,000 services (issue
// 11). The memo is keyed by specKey, the inputs of the hash written out
// without reflection, into a reused buffer. A Service is a value that
// callers copy and change, so the memo is by content, never by Service.
var specHashes = &specMemo{}

// specMemoMax bounds the memo: past it, it starts again empty. Several
// revisions of a few thousand services fit.
const specMemoMax = 1 << 14

// specMemo is a bounded map from specKey to specHash. Safe for
// concurrent use.
type specMemo struct {
	mu  sync.Mutex
	m   map[string]string
	buf sync.Pool // *[]byte for keys
}

func (m *specMemo) hash(s *Service) string {
	bp, _ := m.buf.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	k := s.specKey((*bp)[:0])
	defer func() {
		*bp = k
		m.buf.Put(bp)
	}()
	m.mu.Lock()
	h, ok := m.m[string(k)] // no allocation for the lookup
	m.mu.Unlock()
	if ok {
		return h
	}
	h = s.specHash()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m) >= specMemoMax {
		m.m = make(map[string]string)
	}
	m.m[string(k)] = h
	return h
}

// specKey appends to b every field of s that specHash reads, as it is
// (before specHash's normalising), each string length-prefixed and each
// list and map counted, map keys sorted: two Services with the same key
// have the same spec hash. TestSpecKeyCoversSpecHash fails when a field
// that changes the hash is left out.
func (s *Service) specKey(b []byte) []byte {
	b = appendKeyStr(b, s.SHA)
	b = appendKeyStr(b, s.Artifact.URL)
	b = appendKeyStr(b, s.Artifact.SHA256)
	b = appendKeyNum(b, int64(s.Port))
	b = appendKeyList(b, s.Command)
	b = appendKeyNum(b, int64(len(s.Env)))
	if len(s.Env) > 0 {
		var arr [16]string
		keys := arr[:0]
		for k := range s.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendKeyStr(b, k)
			b = appendKeyStr(b, s.Env[k])
		}
	}
	b = appendKeyStr(b, s.EnvFileDigest)
	b = appendKeyStr(b, s.User)
	b = appendKeyStr(b, s.Template)
	b = appendKeyStr(b, s.TemplateSnapshot)
	b = appendKeyList(b, s.Allow)
	b = appendKeyNum(b, int64(len(s.Data)))
	for _, d := range s.Data {
		b = appendKeyStr(b, d.Name)
		b = appendKeyStr(b, d.Path)
		b = appendKeyNum(b, d.Quota)
	}
	l := s.Limits
	b = appendKeyNum(b, l.Memory)
	b = appendKeyNum(b, int64(l.PCPU))
	b = appendKeyNum(b, int64(l.MaxProc))
	b = appendKeyNum(b, int64(l.OpenFiles))
	b = appendKeyNum(b, l.Disk)
	b = appendKeyList(b, s.Migrate)
	return b
}

func appendKeyStr(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendKeyNum(b []byte, n int64) []byte {
	b = strconv.AppendInt(b, n, 10)
	return append(b, ';')
}

// appendKeyList tells nil from empty: specHash encodes a nil command as
// null and an empty one as [].
func appendKeyList(b []byte, l []string) []byte {
	if l == nil {
		return append(b, 'n')
	}
	b = appendKeyNum(b, int64(len(l)))
	for _, s := range l {
		b = appendKeyStr(b, s)
	}
	return b
}
