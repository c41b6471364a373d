// The client side of status and sync: both talk to the running agent's
// HTTP listener.

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/redact"
)

// daemonURL is the base URL of the running agent's listener.
func daemonURL(cfgPath, addr string) (string, error) {
	if addr == "" {
		cfg, err := loadConfig(cfgPath)
		if err != nil {
			return "", err
		}
		addr = cfg.Listen
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/"), nil
}

// httpDo sends a bodyless request to the running agent and returns the
// body of a 2xx answer; any other status is an error with the body's text.
func httpDo(ctx context.Context, method, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is the agent running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, redact.Printable(resp.Status), redact.Printable(strings.TrimSpace(string(body))))
	}
	return body, nil
}
