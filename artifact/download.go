package artifact

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jailkeeper/jailkeeper/internal/redact"
)

// Download GETs rawURL (http or https only) into the file dst, for files
// that are not release artifacts (a FreeBSD release's MANIFEST and
// base.txz). It shares Fetch's download path: a temporary file in dst's
// directory (created with mode 0755 if missing) that is renamed to dst,
// mode 0644, only when complete and, if sum is not empty, only when its
// sha256 is sum (64 hex digits, either case). It reads at most maxSize
// bytes (0 means DefaultMaxSize) and is bound by ctx alone; client nil
// means a client with http.DefaultTransport. On error dst is unchanged and
// no temporary file is left. A bad URL, a network error, a status other
// than 200 or a size over the limit wraps ErrFetch, a sum mismatch wraps
// ErrChecksum; errors of the local file system are returned as they are.
// Every error names the URL without its password or query. Safe for
// concurrent use with distinct dst.
func Download(ctx context.Context, client *http.Client, rawURL, dst string, maxSize int64, sum string) error {
	return DownloadProgress(ctx, client, rawURL, dst, maxSize, sum, nil)
}

// Progress is told, after every read of a download's body, how many bytes
// have arrived (done) and how many the server announced (total, -1 when it
// did not say). It runs on the goroutine that reads, so a slow Progress
// slows the download.
type Progress func(done, total int64)

// DownloadProgress is Download that reports the bytes read to progress
// (nil: none) as they arrive. Everything else is as Download.
func DownloadProgress(ctx context.Context, client *http.Client, rawURL, dst string, maxSize int64, sum string, progress Progress) error {
	sum = strings.ToLower(sum)
	if sum != "" && !sumRE.MatchString(sum) {
		return fmt.Errorf("download %s: %w: expected sha256 %q is not 64 hex digits", redact.URL(rawURL), ErrChecksum, sum)
	}
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport}
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("download %s: %w: %w", redact.URL(rawURL), ErrFetch, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("download %s: %w: unsupported URL scheme %q (http, https)", redact.URL(rawURL), ErrFetch, u.Scheme)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", redact.URL(rawURL), err)
	}
	body, size, err := openHTTP(ctx, client, u)
	if err != nil {
		return fmt.Errorf("download %s: %w", redact.URL(rawURL), err)
	}
	defer body.Close()
	var r io.Reader = body
	if progress != nil {
		r = &progressReader{r: body, total: size, f: progress}
	}
	if err := save(ctx, r, size, dst, maxSize, sum); err != nil {
		return fmt.Errorf("download %s: %w", redact.URL(rawURL), err)
	}
	return nil
}

// progressReader counts what passes through it for a Progress.
type progressReader struct {
	r           io.Reader
	done, total int64
	f           Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.f(p.done, p.total)
	}
	return n, err
}
