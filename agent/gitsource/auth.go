package gitsource

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// defaultTokenUser is the basic-auth username sent with a token when the URL
// names none. GitHub, Gitea and Forgejo accept any username with a token;
// GitLab wants "oauth2" for OAuth tokens: put it in the URL
// (https://oauth2@gitlab.example.com/...).
const defaultTokenUser = "x-access-token"

// newHostKeyDB reads a known_hosts file. It is read with
// golang.org/x/crypto/ssh/knownhosts through github.com/skeema/knownhosts,
// which also tells which host key algorithms to ask the server for, so that a
// host listed with an ed25519 key is not refused for presenting its RSA key.
func newHostKeyDB(file string) (*knownhosts.HostKeyDB, error) {
	db, err := knownhosts.NewDB(file)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// sshAuth is go-git's public-key auth with a pinned known_hosts and a dial
// timeout. go-git only bounds the ssh dial by ssh.ClientConfig.Timeout, not
// by the context, hence the override.
type sshAuth struct {
	*gitssh.PublicKeys
	timeout time.Duration
	// hostKeyErr is the last host key refusal, kept because go-git does
	// not promise to return the callback's error unwrapped.
	hostKeyErr *error
}

func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = a.timeout
	return cfg, nil
}

// auth builds the transport auth for one Poll, re-reading the token and the
// known_hosts file. hostKeyErr receives a host key refusal.
func (s *Source) auth(hostKeyErr *error) (transport.AuthMethod, error) {
	switch s.cfg.kind {
	case kindSSH:
		signer, err := readSigner(s.cfg.SSHKey)
		if err != nil {
			return nil, fmt.Errorf("repo.ssh_key: %w", err)
		}
		db, err := newHostKeyDB(s.cfg.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("repo.known_hosts: %w", err)
		}
		port := s.cfg.endpoint.Port
		if port <= 0 {
			port = gitssh.DefaultPort
		}
		hostPort := net.JoinHostPort(s.cfg.endpoint.Host, strconv.Itoa(port))
		check := db.HostKeyCallback()
		file := s.cfg.KnownHosts
		pk := &gitssh.PublicKeys{User: s.cfg.endpoint.User, Signer: signer}
		pk.HostKeyCallback = func(host string, remote net.Addr, key ssh.PublicKey) error {
			err := check(host, remote, key)
			if err == nil {
				return nil
			}
			err = hostKeyError(host, file, key, err)
			*hostKeyErr = err
			return err
		}
		pk.HostKeyAlgorithms = db.HostKeyAlgorithms(hostPort)
		return &sshAuth{PublicKeys: pk, timeout: s.cfg.Timeout, hostKeyErr: hostKeyErr}, nil
	case kindHTTP:
		if s.cfg.TokenFile == "" {
			return nil, nil
		}
		tok, err := readToken(s.cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("repo.token_file: %w", err)
		}
		user := s.cfg.endpoint.User
		if user == "" {
			user = defaultTokenUser
		}
		return &githttp.BasicAuth{Username: user, Password: tok}, nil
	}
	return nil, nil
}

// hostKeyError explains why a host key was refused. The result wraps
// ErrHostKey.
func hostKeyError(host, file string, key ssh.PublicKey, err error) error {
	got := key.Type() + " " + ssh.FingerprintSHA256(key)
	switch {
	case knownhosts.IsHostUnknown(err):
		return fmt.Errorf("%w: %s presented %s, which %s does not list (unknown host; no trust on first use)",
			ErrHostKey, host, got, file)
	case knownhosts.IsHostKeyChanged(err):
		var ke *xknownhosts.KeyError
		var want []string
		if errors.As(err, &ke) {
			for _, w := range ke.Want {
				want = append(want, fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
			}
		}
		return fmt.Errorf("%w: %s presented %s, but known_hosts has %s (host key changed)",
			ErrHostKey, host, got, strings.Join(want, ", "))
	default:
		// A revoked key, for instance.
		return fmt.Errorf("%w: %s presented %s: %v", ErrHostKey, host, got, err)
	}
}
