package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// HTTPProber probes releases over plain HTTP. It keeps no idle connections,
// so a stopped release leaves nothing behind. Safe for concurrent use.
type HTTPProber struct{ client *http.Client }

// NewHTTPProber returns a prober that never follows redirects.
func NewHTTPProber() *HTTPProber {
	return &HTTPProber{client: &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Probe returns nil when GET url answers 2xx within timeout.
func (p *HTTPProber) Probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
