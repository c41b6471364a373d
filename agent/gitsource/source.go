package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Errors of Poll; test them with errors.Is. Each one is wrapped with the
// details (URL, commit, host, file).
var (
	// ErrUnreachable: the remote could not be listed or fetched (network,
	// missing repository, authentication, host key). Retry later.
	ErrUnreachable = errors.New("remote unreachable")
	// ErrHostKey: the ssh server's host key is not in repo.known_hosts, or
	// differs from the one listed there. Also wraps ErrUnreachable.
	ErrHostKey = errors.New("host key refused")
	// ErrSignature: the head commit is unsigned, not signed by a key of
	// repo.verify_keyring, or (also wrapping ErrDowngrade) does not descend
	// from the last verified commit. Needs a new, signed commit.
	ErrSignature = errors.New("commit signature refused")
	// ErrNotFound: the branch is not on the remote, or repo.path is not a
	// directory in the head commit. Needs a new commit or a config change.
	ErrNotFound = errors.New("not found")
	// ErrDowngrade: with repo.verify_keyring, the head is validly signed
	// but is neither the last verified commit nor one of its descendants:
	// the branch was reset to an older commit or rewritten. It always comes
	// wrapped together with ErrSignature, so it counts as a refused
	// signature. Needs a new signed commit on top of the last verified one,
	// or an operator who accepts the rewritten history (see the package
	// documentation).
	ErrDowngrade = errors.New("commit does not descend from the last verified commit")
	// ErrLimit: the head's manifest directory is larger than Poll reads
	// (manifest.MaxEntries entries, manifest.MaxTotalSize bytes of
	// manifests, or a tree object too large to hold that many). Found
	// before any file is read. Needs a new commit.
	ErrLimit = errors.New("manifest directory over its limits")
)

const (
	remoteName = "origin"
	// goodRefPrefix + branch records the last good commit in the clone, so
	// that it survives a restart. refs/jailkeeper/ is ours: no refspec of a
	// user's git would touch it.
	goodRefPrefix = "refs/jailkeeper/good/"
)

// Snapshot is the manifest directory of one commit of the deploy repo.
type Snapshot struct {
	// Revision is the commit's full hex SHA; "" for the zero Snapshot.
	Revision string
	// Time is the commit's committer time.
	Time time.Time
	// FS is the manifest directory (Config.Path) at that commit, read from
	// the git objects into memory: immutable, safe for concurrent use, and
	// unaffected by later Polls. It holds only the entries whose names
	// make them manifests (manifest.IsManifestName): regular files with
	// their content, symlinks as symlinks (never followed, so
	// manifest.Load refuses them), subdirectories and submodules as empty
	// directories (never read). Its files' ModTime is Time. Nil in the
	// zero Snapshot.
	FS fs.FS
	// Signer is the fingerprint (upper-case hex) of the key that signed the
	// commit, when Config.VerifyKeyring is set.
	Signer string
	// Changed reports whether Revision differs from that of the Snapshot
	// the previous Poll returned (the first non-zero Snapshot is Changed).
	Changed bool
}

// Stats counts the remote operations of a Source since New.
type Stats struct {
	// Polls is the number of Poll calls.
	Polls int
	// Lists is the number of remote listings (ls-remote) that succeeded.
	Lists int
	// Fetches is the number of fetches attempted, the initial clone
	// included. A Poll fetches only when the branch moved.
	Fetches int
}

// Source polls one branch of the deploy repo. Its methods are safe for
// concurrent use, but Polls are serialised: a Poll waits for the one in
// progress. The clone in Config.Dir must not be shared with another Source
// or process.
type Source struct {
	cfg      settings
	caBundle []byte // extra trusted CAs for https; tests set it

	mu       sync.Mutex
	repo     *git.Repository
	last     Snapshot // last good, Changed unset
	returned string   // Revision of the Snapshot the previous Poll returned
	stats    Stats
	refused  refusal // the last head refused by checkDescent
}

// New validates cfg, applies the defaults and returns a Source. It reads the
// ssh key, known_hosts, token and keyring files to check them, and touches
// neither the network nor Config.Dir. The error lists every problem, each
// naming its field (repo.url, repo.known_hosts, ...).
func New(cfg Config) (*Source, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: s}, nil
}

// Stats returns the counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Poll brings the clone up to date with the remote branch and returns the
// manifest directory of its head commit. The first Poll opens the clone in
// Config.Dir, or creates it and fetches (the clone). Each Poll lists the
// remote branch and fetches only when the branch points elsewhere than the
// local copy; a force-pushed branch is followed.
//
// On error, Poll returns the last good Snapshot (the zero Snapshot when there
// is none yet, not even one recorded in the clone by an earlier run) together
// with the error, which wraps ErrUnreachable, ErrHostKey, ErrSignature
// (and ErrDowngrade) or ErrNotFound where they apply. With a keyring, a head
// that is unsigned, badly signed, or does not descend from the last
// verified commit is refused on every Poll until the branch moves to a
// verified descendant.
func (s *Source) Poll(ctx context.Context) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Polls++
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	err := s.poll(ctx)
	snap := s.last
	snap.Changed = snap.Revision != s.returned
	s.returned = snap.Revision
	return snap, err
}

// poll updates s.last, or returns why it could not.
func (s *Source) poll(ctx context.Context) error {
	if s.repo == nil {
		repo, err := s.open()
		if err != nil {
			return err
		}
		s.repo = repo
		s.restore(ctx)
	}

	var hostKeyErr error
	auth, err := s.auth(&hostKeyErr)
	if err != nil {
		return err
	}
	head, err := s.lsRemote(ctx, auth, &hostKeyErr)
	if err != nil {
		return err
	}

	tracking := plumbing.NewRemoteReferenceName(remoteName, s.cfg.Branch)
	local, err := s.repo.Reference(tracking, true)
	switch {
	case errors.Is(err, plumbing.ErrReferenceNotFound):
	case err != nil:
		return fmt.Errorf("read %s in %s: %w", tracking, s.cfg.Dir, err)
	}
	if local == nil || local.Hash() != head || !s.hasCommit(head) {
		if err := s.fetch(ctx, auth, &hostKeyErr); err != nil {
			return err
		}
		if local, err = s.repo.Reference(tracking, true); err != nil {
			return fmt.Errorf("fetch %s: branch %s: %w", s.cfg.display, s.cfg.Branch, err)
		}
	}
	// The branch may have moved again between the listing and the fetch:
	// take what was fetched; the next Poll sees it unchanged.
	rev := local.Hash()
	if rev.String() == s.last.Revision {
		return nil
	}
	snap, err := s.snapshot(ctx, rev)
	if err != nil {
		return err
	}
	if s.cfg.keyring != "" {
		if err := s.checkDescent(ctx, rev); err != nil {
			return err
		}
	}
	good := plumbing.NewHashReference(plumbing.ReferenceName(goodRefPrefix+s.cfg.Branch), rev)
	if err := s.repo.Storer.SetReference(good); err != nil {
		return fmt.Errorf("record %s in %s: %w", good.Name(), s.cfg.Dir, err)
	}
	s.last = snap
	return nil
}

// snapshot reads commit rev: verifies it when a keyring is set, and copies
// the manifest directory.
func (s *Source) snapshot(ctx context.Context, rev plumbing.Hash) (Snapshot, error) {
	c, err := s.repo.CommitObject(rev)
	if err != nil {
		return Snapshot{}, fmt.Errorf("commit %s in %s: %w", rev, s.cfg.Dir, err)
	}
	var signer string
	if s.cfg.keyring != "" {
		if signer, err = verify(c, s.cfg.keyring); err != nil {
			return Snapshot{}, err
		}
	}
	// Only the trees on repo.path and the manifest directory's own tree
	// are decoded, each after a check of its size: nothing else of the
	// commit is read, however many paths it names.
	dir, ok, err := findDir(s.repo.Storer, c.TreeHash, s.cfg.Path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("commit %s: repo.path %s: %w", rev, s.cfg.Path, err)
	}
	if !ok {
		return Snapshot{}, fmt.Errorf("commit %s: repo.path %s: %w: no such directory", rev, s.cfg.Path, ErrNotFound)
	}
	when := c.Committer.When
	fsys, err := newTreeFS(ctx, s.repo.Storer, dir, when)
	if err != nil {
		return Snapshot{}, fmt.Errorf("commit %s: repo.path %s: %w", rev, s.cfg.Path, err)
	}
	return Snapshot{Revision: rev.String(), Time: when, FS: fsys, Signer: signer}, nil
}

// restore makes the last good commit recorded by an earlier run the last
// good Snapshot, if it still passes the checks (the keyring may have
// changed). Failing that, there is no last good Snapshot yet.
func (s *Source) restore(ctx context.Context) {
	ref, err := s.repo.Reference(plumbing.ReferenceName(goodRefPrefix+s.cfg.Branch), true)
	if err != nil {
		return
	}
	if snap, err := s.snapshot(ctx, ref.Hash()); err == nil {
		s.last = snap
	}
}

func (s *Source) hasCommit(h plumbing.Hash) bool {
	_, err := s.repo.CommitObject(h)
	return err == nil
}

// lsRemote returns the hash the remote branch points to.
func (s *Source) lsRemote(ctx context.Context, auth transport.AuthMethod, hostKeyErr *error) (plumbing.Hash, error) {
	remote, err := s.repo.Remote(remoteName)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("clone %s: %w", s.cfg.Dir, err)
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth, CABundle: s.caBundle})
	if err != nil {
		return plumbing.ZeroHash, s.remoteError("ls-remote", err, *hostKeyErr)
	}
	s.stats.Lists++
	want := plumbing.NewBranchReferenceName(s.cfg.Branch)
	for _, r := range refs {
		if r.Name() == want && r.Type() == plumbing.HashReference {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("ls-remote %s: branch %s: %w", s.cfg.display, s.cfg.Branch, ErrNotFound)
}

// fetch updates the tracking ref, forced, so a rewritten branch is followed.
func (s *Source) fetch(ctx context.Context, auth transport.AuthMethod, hostKeyErr *error) error {
	s.stats.Fetches++
	err := s.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{s.refSpec()},
		Auth:       auth,
		Tags:       git.NoTags,
		Force:      true,
		CABundle:   s.caBundle,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	var noMatch git.NoMatchingRefSpecError
	if errors.As(err, &noMatch) {
		return fmt.Errorf("fetch %s: branch %s: %w", s.cfg.display, s.cfg.Branch, ErrNotFound)
	}
	return s.remoteError("fetch", err, *hostKeyErr)
}

func (s *Source) remoteError(op string, err, hostKeyErr error) error {
	switch {
	case hostKeyErr != nil:
		return fmt.Errorf("%s %s: %w: %w", op, s.cfg.display, ErrUnreachable, hostKeyErr)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%s %s: branch %s: %w: %w", op, s.cfg.display, s.cfg.Branch, ErrNotFound, err)
	}
	return fmt.Errorf("%s %s: %w: %w", op, s.cfg.display, ErrUnreachable, err)
}

func (s *Source) refSpec() config.RefSpec {
	return config.RefSpec(fmt.Sprintf("+%s:%s",
		plumbing.NewBranchReferenceName(s.cfg.Branch),
		plumbing.NewRemoteReferenceName(remoteName, s.cfg.Branch)))
}

// open opens the bare clone in Config.Dir, creating it when Dir is missing
// or empty. When the configured URL differs from the clone's, the clone's
// remote is repointed and its refs from the old remote are dropped.
func (s *Source) open() (*git.Repository, error) {
	dir := s.cfg.Dir
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = s.initRepo()
	}
	if err != nil {
		return nil, fmt.Errorf("open clone %s: %w", dir, err)
	}

	rc := &config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{s.cfg.endpoint.String()},
		Fetch: []config.RefSpec{s.refSpec()},
	}
	if s.cfg.kind == kindFile {
		rc.URLs = []string{s.cfg.endpoint.Path}
	}
	old, err := repo.Remote(remoteName)
	switch {
	case err == nil && slices.Equal(old.Config().URLs, rc.URLs):
		return repo, nil
	case err == nil:
		if err := repo.DeleteRemote(remoteName); err != nil {
			return nil, fmt.Errorf("clone %s: repoint remote: %w", dir, err)
		}
		if err := dropRefs(repo); err != nil {
			return nil, fmt.Errorf("clone %s: repoint remote: %w", dir, err)
		}
	case !errors.Is(err, git.ErrRemoteNotFound):
		return nil, fmt.Errorf("clone %s: %w", dir, err)
	}
	if _, err := repo.CreateRemote(rc); err != nil {
		return nil, fmt.Errorf("clone %s: add remote: %w", dir, err)
	}
	return repo, nil
}

// initRepo creates an empty bare repository in Dir, which must be missing or
// empty: it is made in a temporary sibling and renamed into place, so a
// crash leaves no half-made repository behind.
func (s *Source) initRepo() (*git.Repository, error) {
	dir := s.cfg.Dir
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%s exists and is not a git repository; remove it to clone again", dir)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".init-")
	if err != nil {
		return nil, err
	}
	if _, err := git.PlainInit(tmp, true); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return git.PlainOpen(dir)
}

// dropRefs deletes the refs that came from the old remote.
func dropRefs(repo *git.Repository) error {
	refs, err := repo.References()
	if err != nil {
		return err
	}
	var names []plumbing.ReferenceName
	err = refs.ForEach(func(r *plumbing.Reference) error {
		if r.Name().IsRemote() || strings.HasPrefix(r.Name().String(), goodRefPrefix) {
			names = append(names, r.Name())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := repo.Storer.RemoveReference(n); err != nil {
			return err
		}
	}
	return nil
}
