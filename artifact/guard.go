package artifact

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// errInternal refuses a connection to the host's own networks.
var errInternal = errors.New("loopback, link-local, private and other non-public addresses are refused unless the URL is under policy.artifact_hosts")

// internalPrefixes are the ranges, besides those netip classifies
// (loopback, private, link-local, multicast, unspecified), that no artifact
// URL may reach unless allowed: they are the host's own networks, carrier
// NAT, or not routable on the internet.
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network" (RFC 791)
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (RFC 5737)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking (RFC 2544)
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast included (RFC 1112)
	netip.MustParsePrefix("fec0::/10"),       // site-local, deprecated (RFC 3879)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation (RFC 3849)
	netip.MustParsePrefix("100::/64"),        // discard (RFC 6666)
}

// Ranges that embed an IPv4 address, checked as that address.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052
	sixToFour = netip.MustParsePrefix("2002::/16")    // RFC 3056
)

// internalAddr reports whether a is one of the host's own, private or
// otherwise non-public addresses.
func internalAddr(a netip.Addr) bool {
	a = a.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return internalAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return internalAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() {
		return true
	}
	for _, p := range internalPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// prefix is an allowed URL prefix, normalised.
type prefix struct {
	scheme, host, port, path string
}

// parsePrefix checks and normalises one of Options.AllowedPrefixes.
func parsePrefix(raw string) (prefix, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return prefix{}, fmt.Errorf("allowed prefix %q: %w", raw, err)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return prefix{}, fmt.Errorf("allowed prefix %q: only scheme, host, port and path", raw)
	}
	p, ok := normalise(u)
	if !ok {
		return prefix{}, fmt.Errorf("allowed prefix %q is not an http or https URL with a host and a plain path", raw)
	}
	return p, nil
}

// normalise returns u's scheme, host, port (explicit or the scheme's) and
// path in the form they are compared in; ok is false for anything but a
// plain http or https URL: no "." or ".." segments (%2e and %2f decoded
// first), no backslash, which some servers read as a slash.
func normalise(u *url.URL) (p prefix, ok bool) {
	p.scheme = strings.ToLower(u.Scheme)
	switch p.scheme {
	case "http":
		p.port = "80"
	case "https":
		p.port = "443"
	default:
		return p, false
	}
	p.host = strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if p.host == "" || u.Opaque != "" {
		return p, false
	}
	if a, err := netip.ParseAddr(p.host); err == nil {
		p.host = a.Unmap().String()
	}
	if port := u.Port(); port != "" {
		p.port = strings.TrimLeft(port, "0")
	}
	p.path = u.Path
	if p.path == "" {
		p.path = "/"
	}
	if !strings.HasPrefix(p.path, "/") || strings.Contains(p.path, `\`) {
		return p, false
	}
	for _, seg := range strings.Split(p.path, "/") {
		if seg == "." || seg == ".." {
			return p, false
		}
	}
	return p, true
}

// under reports whether u is under the prefix p: same scheme, host and
// port, and a path that starts with p's at a segment boundary.
func (p prefix) under(u prefix) bool {
	if u.scheme != p.scheme || u.host != p.host || u.port != p.port {
		return false
	}
	if strings.HasSuffix(p.path, "/") {
		return strings.HasPrefix(u.path, p.path)
	}
	return u.path == p.path || strings.HasPrefix(u.path, p.path+"/")
}

// allowed reports whether u is under one of the allowed prefixes.
func (s *Store) allowed(u *url.URL) bool {
	n, ok := normalise(u)
	if !ok {
		return false
	}
	for _, p := range s.prefixes {
		if p.under(n) {
			return true
		}
	}
	return false
}

// reach says whether the request in flight may connect to internal
// addresses; the redirect check updates it for every hop.
type reach struct{ internal atomic.Bool }

type reachKey struct{}

// newClient returns the Store's HTTP client: it dials only public
// addresses, except for a URL under an allowed prefix, checked on the
// address actually connected to (after DNS, so a name that resolves to
// 127.0.0.1 is caught, and so is a rebinding); it follows at most 10
// redirects, to http and https only, each checked the same way; it keeps
// no idle connections (one could otherwise serve a later request that is
// not allowed) and uses no proxy from the environment (the address the
// proxy connects to could not be checked).
func (s *Store) newClient() *http.Client {
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		ControlContext: func(ctx context.Context, network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, errInternal)
			}
			if r, _ := ctx.Value(reachKey{}).(*reach); s.internal(ap.Addr()) && (r == nil || !r.internal.Load()) {
				return errInternal
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		DisableKeepAlives:     true,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL: only http and https", req.URL.Scheme)
			}
			if r, _ := req.Context().Value(reachKey{}).(*reach); r != nil {
				r.internal.Store(s.allowed(req.URL))
			}
			return nil
		},
	}
}
