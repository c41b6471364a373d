package artifact

import (
	"context"
	"fmt"
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
	if err := save(ctx, body, size, dst, maxSize, sum); err != nil {
		return fmt.Errorf("download %s: %w", redact.URL(rawURL), err)
	}
	return nil
}
