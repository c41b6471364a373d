package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/redact"
)

// Errors returned by Store.Fetch, to be tested with errors.Is.
var (
	// ErrChecksum means the content's sha256 differs from the expected sum,
	// or the expected sum is not 64 hex digits. Retrying the same URL and
	// sum is pointless: the manifest needs fixing.
	ErrChecksum = errors.New("artifact checksum mismatch")
	// ErrFetch means the artifact could not be downloaded: a bad URL, an
	// unsupported scheme, a non-200 status, a missing file, a size or time
	// limit exceeded, a network error.
	ErrFetch = errors.New("artifact fetch failed")
	// ErrTransient marks a failed fetch that a later try may cure: the
	// store refused the connection, timed out, answered 5xx, 408, 429 or
	// 404 (CI often publishes the artifact after the manifest commit), or
	// a file URL names a file not there yet. It adds no text: the error
	// reads as it would without it. Every failure of a URL outside the
	// allowed prefixes is ErrTransient (see Fetch).
	ErrTransient = errors.New("transient artifact fetch failure")
)

// Defaults for Options.
const (
	DefaultMaxSize = 1 << 30 // 1 GiB
	DefaultTimeout = 10 * time.Minute
)

// tmpPrefix names downloads in progress inside the cache directory.
const tmpPrefix = ".fetch-"

var sumRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Options tune a Store. The zero value is usable.
type Options struct {
	// MaxSize is the largest artifact accepted, in bytes; 0 means
	// DefaultMaxSize.
	MaxSize int64
	// Timeout bounds one download, connection to last byte; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// FileRoot is the one directory file:// URLs may read artifacts from
	// (the agent's artifacts.file_root), an absolute path. A file URL must
	// name a path below it and is opened through an os.Root on it, so that
	// neither a ".." nor a symbolic link leads out of it. Empty means file
	// URLs are refused: whoever writes the deploy repo must not be able to
	// make the agent read an arbitrary host file.
	FileRoot string
	// AllowedPrefixes are the URL prefixes (the agent's
	// policy.artifact_hosts), such as "http://127.0.0.1:8081/artifacts/",
	// under which an http or https URL may reach loopback, link-local,
	// private and other non-public addresses, and under which fetch
	// errors say what went wrong. A URL is under a prefix when its scheme,
	// host and port (explicit or the scheme's default) are the prefix's and
	// its path starts with the prefix's at a segment boundary; a URL whose
	// path has "." or ".." segments is under none. Any other URL may only
	// reach public addresses, checked on the address connected to, and
	// every failure to fetch it is one message (see Fetch).
	AllowedPrefixes []string
}

// Stats counts what a Store did since it was made.
type Stats struct {
	Downloads int64 // artifacts downloaded and verified
	Hits      int64 // Fetch calls answered from the cache
}

// Store is a cache of verified artifacts in one directory, one file per
// artifact named by its sha256. It is safe for concurrent use; concurrent
// fetches of one sum download it once. Several Stores (or processes) may share
// a directory: every file in it is complete and verified.
type Store struct {
	dir      string
	client   *http.Client
	maxSize  int64
	timeout  time.Duration
	fileRoot string                // cleaned Options.FileRoot; "" refuses file URLs
	prefixes []prefix              // Options.AllowedPrefixes
	internal func(netip.Addr) bool // internalAddr; tests replace it

	downloads atomic.Int64
	hits      atomic.Int64

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per sum
}

// NewStore returns a Store caching in dir, creating dir (mode 0750) if needed
// and removing downloads left behind by an earlier crash. opts.FileRoot, when
// set, must be an absolute path; it need not exist yet. Each of
// opts.AllowedPrefixes must be an http or https URL with a host and a path,
// without userinfo, query or fragment.
func NewStore(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("artifact store: empty directory")
	}
	if opts.FileRoot != "" && !filepath.IsAbs(opts.FileRoot) {
		return nil, fmt.Errorf("artifact store: file root %q is not an absolute path", opts.FileRoot)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	leftovers, err := filepath.Glob(filepath.Join(dir, tmpPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	for _, p := range leftovers {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("artifact store: remove leftover: %w", err)
		}
	}
	s := &Store{
		dir:     dir,
		maxSize: opts.MaxSize,
		timeout: opts.Timeout,
		locks:   map[string]*sync.Mutex{},
	}
	if opts.FileRoot != "" {
		s.fileRoot = filepath.Clean(opts.FileRoot)
	}
	for _, raw := range opts.AllowedPrefixes {
		p, err := parsePrefix(raw)
		if err != nil {
			return nil, fmt.Errorf("artifact store: %w", err)
		}
		s.prefixes = append(s.prefixes, p)
	}
	s.internal = internalAddr
	s.client = s.newClient()
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxSize
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	return s, nil
}

// Stats returns the counters so far.
func (s *Store) Stats() Stats {
	return Stats{Downloads: s.downloads.Load(), Hits: s.hits.Load()}
}

// Path returns where the artifact with sha256 sum is (or would be) cached.
func (s *Store) Path(sum string) string {
	return filepath.Join(s.dir, strings.ToLower(sum))
}

// Fetch returns the local path of the artifact at rawURL whose sha256 is sum
// (64 hex digits, either case). A cached artifact is re-hashed and returned
// without any network access; a cached file that no longer matches its name
// is replaced. Otherwise the artifact is downloaded (http, https, or
// file:///absolute/path below Options.FileRoot) into a temporary file within
// the size and time limits and renamed into the cache only when its sum
// matches. Errors wrap ErrChecksum (naming the expected sum, never the actual
// one: the sum of something the agent can read but the deploy repo's author
// cannot, be it a host file or a loopback service, is what that author would
// need to install it into a release) or ErrFetch (naming the HTTP status or
// the cause); those a later try may cure are ErrTransient too. The
// returned file must not be modified.
//
// An http or https URL that is not under one of Options.AllowedPrefixes
// only reaches public addresses, and whatever goes wrong with it (refused,
// a 404, a timeout, a size limit, a checksum mismatch) is one ErrFetch
// message: the deploy repo's author, who reads /status and the notify
// events, must not be able to tell a closed port from an open one, or a
// missing file from a present one, on the agent's networks; for the same
// reason each such failure is ErrTransient, a checksum mismatch included. The detail is
// dropped, not logged; put the store under policy.artifact_hosts to see it.
func (s *Store) Fetch(ctx context.Context, rawURL, sum string) (string, error) {
	sum = strings.ToLower(sum)
	if !sumRE.MatchString(sum) {
		return "", fmt.Errorf("fetch %s: %w: expected sha256 %q is not 64 hex digits", redact.URL(rawURL), ErrChecksum, sum)
	}
	l := s.lock(sum)
	l.Lock()
	defer l.Unlock()

	dst := s.Path(sum)
	switch actual, err := SHA256File(dst); {
	case err == nil && actual == sum:
		s.hits.Add(1)
		// A use: Prune removes the least recently used first.
		now := time.Now()
		_ = os.Chtimes(dst, now, now)
		return dst, nil
	case err == nil:
		// Corrupted on disk: forget it and download again.
		if err := os.Remove(dst); err != nil {
			return "", fmt.Errorf("fetch %s: remove corrupt cache entry: %w", redact.URL(rawURL), err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("fetch %s: read cache: %w", redact.URL(rawURL), err)
	}

	if err := s.download(ctx, rawURL, sum, dst); err != nil {
		if ctx.Err() == nil && s.opaque(rawURL) {
			// One message and one class, transient: the retry schedule
			// must not tell a checksum mismatch (an open port) from a
			// refused connection either.
			return "", transient(fmt.Errorf("fetch %s: %w: %s", redact.URL(rawURL), ErrFetch, opaqueMessage))
		}
		return "", fmt.Errorf("fetch %s: %w", redact.URL(rawURL), err)
	}
	s.downloads.Add(1)
	return dst, nil
}

func (s *Store) lock(sum string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[sum]
	if !ok {
		l = &sync.Mutex{}
		s.locks[sum] = l
	}
	return l
}

// download writes the verified content of rawURL to dst.
func (s *Store) download(ctx context.Context, rawURL, sum, dst string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	body, size, err := s.open(ctx, rawURL)
	if err != nil {
		return err
	}
	defer body.Close()
	return save(ctx, body, size, dst, s.maxSize, sum)
}

// save writes body (size bytes, -1 if unknown) to dst through a temporary
// file in dst's directory (named tmpPrefix*, mode 0644, synced), reading
// at most maxSize bytes. When sum is not empty, dst appears only if the
// content's sha256 is sum; the error never names the actual sum (see
// Fetch). On error the temporary file is removed and dst is unchanged.
func save(ctx context.Context, body io.Reader, size int64, dst string, maxSize int64, sum string) (err error) {
	if size > maxSize {
		return fmt.Errorf("%w: size %d exceeds the limit of %d bytes", ErrFetch, size, maxSize)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dst), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, maxSize+1))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return classify(fmt.Errorf("%w: read: %w", ErrFetch, err), err)
	}
	if n > maxSize {
		return fmt.Errorf("%w: larger than the limit of %d bytes", ErrFetch, maxSize)
	}
	if actual := hex.EncodeToString(h.Sum(nil)); sum != "" && actual != sum {
		// Never the actual sum: see Fetch.
		return fmt.Errorf("%w: the content does not have the expected sha256 %s", ErrChecksum, sum)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// opaqueMessage is the one error text of a URL outside the allowed
// prefixes.
const opaqueMessage = "not downloaded: the store refused, failed or timed out, the answer was too large or did not match the sha256, " +
	"or the URL leads to a loopback, link-local or private address (those need policy.artifact_hosts, which also shows the detail)"

// opaque reports whether the errors of rawURL are collapsed into
// opaqueMessage: an http or https URL outside the allowed prefixes.
func (s *Store) opaque(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return !s.allowed(u)
}

// open starts reading rawURL and returns the body and its size (-1 if
// unknown).
func (s *Store) open(ctx context.Context, rawURL string) (io.ReadCloser, int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	switch u.Scheme {
	case "http", "https":
		r := &reach{}
		r.internal.Store(s.allowed(u))
		return openHTTP(context.WithValue(ctx, reachKey{}, r), s.client, u)
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, 0, fmt.Errorf("%w: file URL with host %q: only local files", ErrFetch, u.Host)
		}
		if u.Opaque != "" || !filepath.IsAbs(u.Path) {
			return nil, 0, fmt.Errorf("%w: file URL needs an absolute path (file:///path)", ErrFetch)
		}
		return s.openFile(u.Path)
	default:
		return nil, 0, fmt.Errorf("%w: unsupported URL scheme %q (http, https, file)", ErrFetch, u.Scheme)
	}
}

// openHTTP GETs u with client and returns the body of a 200 response and
// its size (-1 if unknown); any other status is an error wrapping ErrFetch.
func openHTTP(ctx context.Context, client *http.Client, u *url.URL) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL, query included: keep only
		// the cause, the caller names the (redacted) URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, 0, classify(fmt.Errorf("%w: %w", ErrFetch, err), err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err := fmt.Errorf("%w: HTTP status %s", ErrFetch, redact.Printable(resp.Status))
		if transientStatus(resp.StatusCode) {
			err = transient(err)
		}
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// openFile opens the absolute path p for reading if it lies below FileRoot,
// through an os.Root so that no symbolic link leads out of it.
func (s *Store) openFile(p string) (io.ReadCloser, int64, error) {
	if s.fileRoot == "" {
		return nil, 0, fmt.Errorf("%w: file URLs are disabled: set artifacts.file_root to the directory they may read from", ErrFetch)
	}
	rel, err := s.fileRel(p)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	root, err := os.OpenRoot(s.fileRoot)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: artifacts.file_root: %w", ErrFetch, err)
	}
	// The file stays open after the root is closed.
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrFetch, err)
		if errors.Is(err, os.ErrNotExist) {
			err = transient(err) // not published yet, as an HTTP 404
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrFetch, p)
	}
	return f, fi.Size(), nil
}

// fileRel returns p (absolute, slash-separated as in a URL) relative to
// FileRoot, or an error if p has a ".." component or is not below FileRoot.
func (s *Store) fileRel(p string) (string, error) {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("file URL path %s has a \"..\" component", p)
		}
	}
	clean := path.Clean(p)
	root := filepath.ToSlash(s.fileRoot)
	if root == "/" {
		if clean == "/" {
			return ".", nil
		}
		return strings.TrimPrefix(clean, "/"), nil
	}
	rel, ok := strings.CutPrefix(clean, root+"/")
	if !ok {
		return "", fmt.Errorf("%s is not below artifacts.file_root %s", p, s.fileRoot)
	}
	return rel, nil
}

// SHA256File returns the hex sha256 of the file at p.
func SHA256File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
