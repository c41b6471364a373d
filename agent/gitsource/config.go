package gitsource

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/crypto/ssh"

	"github.com/jailkeeper/jailkeeper/internal/redact"
)

// Defaults applied by New to the zero values of Config.
const (
	DefaultBranch  = "main"
	DefaultPath    = "services"
	DefaultTimeout = time.Minute
)

// Config says where the deploy repo is and how to reach it. Field names in
// error messages are those of the agent config's repo section
// (repo.url, repo.known_hosts, ...).
type Config struct {
	// URL of the deploy repo: ssh://user@host[:port]/path, user@host:path,
	// https://..., http://..., file:///path or a local path. The ssh user
	// defaults to "git". For https the URL's user, if any, is the basic-auth
	// username sent with the token (default "x-access-token").
	URL string
	// Branch to follow; default DefaultBranch ("main").
	Branch string
	// Path is the manifest directory inside the repo, slash-separated and
	// relative; default DefaultPath ("services"); "." is the repo root.
	Path string
	// Dir holds the persistent bare clone, for instance <state_dir>/repo.
	// It is created on the first Poll. Required.
	Dir string
	// SSHKey is the private key file for ssh URLs (OpenSSH or PEM format,
	// without passphrase). Required for ssh URLs, refused for others.
	SSHKey string
	// KnownHosts is a known_hosts file that must list the server's host key.
	// Required for ssh URLs, refused for others. Re-read on every Poll.
	KnownHosts string
	// TokenFile holds an access token for https URLs (surrounding whitespace
	// is trimmed). Re-read on every Poll, so a rotated token is picked up.
	// Refused for ssh and file URLs, and for plain http unless the host is
	// loopback.
	TokenFile string
	// VerifyKeyring is an OpenPGP public keyring (armored or binary). When
	// set, the head commit must be signed by one of its keys. Read once by
	// New.
	VerifyKeyring string
	// Timeout bounds the remote operations of one Poll; default
	// DefaultTimeout.
	Timeout time.Duration
}

type transportKind int

const (
	kindFile transportKind = iota
	kindSSH
	kindHTTP
)

// settings is a validated Config.
type settings struct {
	Config
	endpoint *transport.Endpoint
	kind     transportKind
	display  string // URL without password, for error messages
	keyring  string // armored public keyring, "" when not verifying
}

// validate checks cfg and fills in defaults. Every error names the field.
func validate(cfg Config) (settings, error) {
	s := settings{Config: cfg}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("repo.%s: "+format, append([]any{field}, args...)...))
	}

	if s.Branch == "" {
		s.Branch = DefaultBranch
	}
	if err := plumbing.NewBranchReferenceName(s.Branch).Validate(); err != nil {
		bad("branch", "%q is not a valid branch name", s.Branch)
	}

	if s.Path == "" {
		s.Path = DefaultPath
	}
	if p, err := cleanPath(s.Path); err != nil {
		bad("path", "%v", err)
	} else {
		s.Path = p
	}

	switch {
	case s.Dir == "":
		errs = append(errs, errors.New("repo dir: required (the clone lives in <state_dir>/repo)"))
	default:
		if abs, err := filepath.Abs(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("repo dir %s: %w", s.Dir, err))
		} else {
			s.Dir = abs
		}
	}

	switch {
	case s.Timeout < 0:
		bad("timeout", "%s is negative", s.Timeout)
	case s.Timeout == 0:
		s.Timeout = DefaultTimeout
	}

	if s.URL == "" {
		bad("url", "required")
		return s, errors.Join(errs...)
	}
	ep, err := transport.NewEndpoint(s.URL)
	if err != nil {
		bad("url", "%v", err)
		return s, errors.Join(errs...)
	}
	switch ep.Protocol {
	case "ssh":
		s.kind = kindSSH
		if ep.User == "" {
			ep.User = "git"
		}
	case "https", "http":
		s.kind = kindHTTP
	case "file":
		s.kind = kindFile
		if !filepath.IsAbs(ep.Path) {
			abs, err := filepath.Abs(ep.Path)
			if err != nil {
				bad("url", "%v", err)
			}
			ep.Path = abs
		}
	default:
		bad("url", "scheme %s:// is not supported (use ssh, https or file)", ep.Protocol)
		return s, errors.Join(errs...)
	}
	s.endpoint = ep
	s.display = displayURL(ep)

	// ssh
	if s.kind == kindSSH {
		if s.SSHKey == "" {
			bad("ssh_key", "required for ssh URL %s", s.display)
		} else if _, err := readSigner(s.SSHKey); err != nil {
			bad("ssh_key", "%v", err)
		}
		if s.KnownHosts == "" {
			bad("known_hosts", "required for ssh URL %s (host keys are pinned, no trust on first use)", s.display)
		} else if _, err := newHostKeyDB(s.KnownHosts); err != nil {
			bad("known_hosts", "%v", err)
		}
	} else {
		if s.SSHKey != "" {
			bad("ssh_key", "set, but %s is not an ssh URL", s.display)
		}
		if s.KnownHosts != "" {
			bad("known_hosts", "set, but %s is not an ssh URL", s.display)
		}
	}

	// https token
	if s.TokenFile != "" {
		switch {
		case s.kind != kindHTTP:
			bad("token_file", "set, but %s is not an https URL", s.display)
		case ep.Protocol == "http" && !isLoopback(ep.Host):
			bad("token_file", "refusing to send a token over plain http to %s; use https", ep.Host)
		default:
			if _, err := readToken(s.TokenFile); err != nil {
				bad("token_file", "%v", err)
			}
		}
	}

	if s.VerifyKeyring != "" {
		kr, err := loadKeyring(s.VerifyKeyring)
		if err != nil {
			bad("verify_keyring", "%v", err)
		}
		s.keyring = kr
	}
	return s, errors.Join(errs...)
}

// cleanPath turns the configured manifest directory into a clean,
// slash-separated path relative to the repo root ("." for the root).
func cleanPath(p string) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return ".", nil
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q must be relative to the repo root", p)
	}
	c := path.Clean(p)
	if !validFSPath(c) {
		return "", fmt.Errorf("%q is not a path inside the repo", p)
	}
	return c, nil
}

func validFSPath(p string) bool {
	if p == "." {
		return true
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}

// displayURL is the endpoint without its password.
func displayURL(ep *transport.Endpoint) string {
	c := *ep
	c.Password = ""
	if c.Protocol == "file" {
		return c.Path
	}
	if c.Protocol == "http" || c.Protocol == "https" {
		// go-git keeps the query in Path; an https user name is often a
		// token: redact.URL hides both.
		p, q, _ := strings.Cut(c.Path, "?")
		u := url.URL{Scheme: c.Protocol, Host: c.Host, Path: p, RawQuery: q}
		if c.Port != 0 {
			u.Host = net.JoinHostPort(c.Host, fmt.Sprint(c.Port))
		}
		if c.User != "" {
			u.User = url.User(c.User)
		}
		return redact.URL(u.String())
	}
	return c.String()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// readSigner reads and parses an unencrypted private key.
func readSigner(file string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) {
		return nil, fmt.Errorf("%s: passphrase-protected keys are not supported", file)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return signer, nil
}

// readToken reads a token file, trimming surrounding whitespace.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("%s has more than one line", file)
	}
	return tok, nil
}
