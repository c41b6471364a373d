package artifact

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
)

// ErrUnsafe means a tarball entry was refused: an absolute name, a ".."
// component, a link whose target leaves the root, a write through a
// symbolic link, or a device or fifo. The error names the entry.
var ErrUnsafe = errors.New("unsafe artifact entry")

// ErrLimit marks a tarball over a limit; it is always ErrUnsafe too.
var ErrLimit = errors.New("artifact over a limit")

// maxExtract bounds the bytes a tarball may expand to (a gzip bomb would fill
// the disk long before the download limit is reached). A variable for tests.
var maxExtract int64 = 8 << 30

// maxEntries and maxDepth bound a tarball's entries and path depth.
var (
	maxEntries = 250_000
	maxDepth   = 128
)

// maxLinkHops bounds the symbolic links followed while checking one link.
const maxLinkHops = 40

// Install puts the artifact src into the release root directory root.
//
// When src starts with the gzip magic bytes (its name does not matter) it is
// a gzip'd tar and is extracted into root: entries with absolute names or ".."
// components, symbolic or hard links whose target leaves root (absolute
// symbolic link targets included: they would point at the host's files),
// entries whose path crosses a symbolic link, devices and fifos are refused
// with ErrUnsafe. Permission bits and the sticky bit are kept, setuid and
// setgid are dropped, and ownership is not (everything belongs to the
// caller). A directory that already exists in root (the template's /usr, say)
// is used as it is: its mode and owner never change, whatever its entry says,
// so that an artifact cannot make the release's /usr world-writable. The
// modes of directories the extraction created are applied last, so a
// read-only directory can still be filled. A file entry replaces whatever
// non-directory sits at its name (the artifact owns what it ships): the old
// name is removed and a new file created, so neither a symbolic link nor a
// hard link at that name is ever written through. Then command0, when not
// empty, must name a regular file in root.
//
// Otherwise src is a single executable, copied to command0 taken relative to
// root (so /usr/local/bin/hello lands in root/usr/local/bin/hello) with mode
// 0755, parent directories created with mode 0755.
//
// A tarball is bounded: at most maxEntries filesystem objects (entries and
// the directories made for them), paths at most maxDepth components deep,
// and maxExtract bytes of file content; beyond a limit Install fails with an
// error that is both ErrLimit and ErrUnsafe, so that the release is not
// retried with the same artifact. Its cost is linear in the size of the
// tarball's names and content: every directory is checked or created once.
//
// Install stops with ctx's error when ctx is done, between entries and while
// copying a file.
//
// All writes go through an os.Root on root, so nothing outside it is ever
// touched. On error root may hold part of the artifact: the caller discards
// the release.
func Install(ctx context.Context, src, root, command0 string) error {
	if err := install(ctx, src, root, command0); err != nil {
		return fmt.Errorf("install %s into %s: %w", path.Base(src), root, err)
	}
	return nil
}

func install(ctx context.Context, src, root, command0 string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()

	br := bufio.NewReader(f)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		if err := extract(ctx, br, r); err != nil {
			return err
		}
		if command0 == "" {
			return nil
		}
		rel, err := relCommand(command0)
		if err != nil {
			return err
		}
		fi, err := r.Stat(rel)
		if err != nil {
			return fmt.Errorf("tarball has no command %s: %w", command0, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("command %s in the tarball is not a regular file", command0)
		}
		return nil
	}
	return copyExecutable(ctxReader{ctx, br}, r, command0)
}

// ctxReader fails a read once ctx is done, so that a long copy stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// relCommand turns /usr/local/bin/hello into usr/local/bin/hello.
func relCommand(command0 string) (string, error) {
	rel := strings.TrimLeft(command0, "/")
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: command %q has a \"..\" component", ErrUnsafe, command0)
		}
	}
	rel = path.Clean(rel)
	if rel == "." || rel == "" {
		return "", fmt.Errorf("command %q names no file", command0)
	}
	return rel, nil
}

func copyExecutable(src io.Reader, r *os.Root, command0 string) error {
	rel, err := relCommand(command0)
	if err != nil {
		return err
	}
	if dir := path.Dir(rel); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if fi, err := r.Lstat(rel); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("command %s is a directory in the release", command0)
		}
		if err := r.Remove(rel); err != nil {
			return err
		}
	}
	// O_EXCL: never follow a symbolic link that might sit at rel.
	out, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o755); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// extractor unpacks one tarball into a root.
type extractor struct {
	ctx      context.Context
	root     *os.Root
	created  map[string]bool        // directories this extraction made
	dirs     map[string]bool        // real directories (not links), made or checked
	dirModes map[string]fs.FileMode // of created directories, applied at the end
	links    []string               // symbolic links created, checked at the end
	written  int64
	objects  int   // entries and directories made for them, against maxEntries
	walked   int64 // path components resolved through the root, for tests
}

func newExtractor(ctx context.Context, r *os.Root) *extractor {
	return &extractor{ctx: ctx, root: r, created: map[string]bool{}, dirs: map[string]bool{}, dirModes: map[string]fs.FileMode{}}
}

// count counts one more filesystem object against maxEntries.
func (x *extractor) count() error {
	if x.objects++; x.objects > maxEntries {
		return fmt.Errorf("%w: %w: tarball has more than %d entries (directories made for them included)", ErrUnsafe, ErrLimit, maxEntries)
	}
	return nil
}

// walk counts the components of name, which the root resolves one by one.
func (x *extractor) walk(name string) { x.walked += int64(strings.Count(name, "/") + 1) }

func extract(ctx context.Context, gz io.Reader, r *os.Root) error {
	zr, err := gzip.NewReader(gz)
	if err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	x := newExtractor(ctx, r)
	err = x.entries(tr)
	// A link may have been checked before a later entry changed what its
	// target resolves through: check them all again on the final tree, even
	// after an error. Unsafe ones are removed, so that even a caller that
	// keeps the root holds no link leading out.
	for _, l := range x.links {
		if lerr := resolveInside(r, l, x.dirs); lerr != nil {
			if err == nil {
				err = fmt.Errorf("%w: symbolic link %s: %w", ErrUnsafe, l, lerr)
			}
			if rerr := r.Remove(l); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				return fmt.Errorf("remove unsafe link %s: %w", l, rerr)
			}
		}
	}
	if err != nil {
		return err
	}
	dirs := make([]string, 0, len(x.dirModes))
	for d := range x.dirModes {
		dirs = append(dirs, d)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) }) // deepest first
	for _, d := range dirs {
		if err := r.Chmod(d, x.dirModes[d]); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) entries(tr *tar.Reader) error {
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
}

// mode keeps the permission and sticky bits of a tar header mode.
func mode(hdrMode int64) fs.FileMode {
	m := fs.FileMode(hdrMode) & fs.ModePerm
	if hdrMode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func (x *extractor) entry(hdr *tar.Header, body io.Reader) error {
	name, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		// "./" itself, as `tar -C dir .` writes it: the root exists.
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return fmt.Errorf("%w: entry %q is the root itself", ErrUnsafe, hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("%w: %s is a device or fifo", ErrUnsafe, hdr.Name)
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default:
		return fmt.Errorf("%w: %s has unsupported type %q", ErrUnsafe, hdr.Name, hdr.Typeflag)
	}
	if err := x.count(); err != nil {
		return err
	}
	if err := checkDepth(name, hdr.Name); err != nil {
		return err
	}
	if err := x.parents(name, hdr.Name); err != nil {
		return err
	}
	if err := x.clear(name, hdr); err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		x.walk(name)
		switch err := x.root.Mkdir(name, 0o755); {
		case err == nil:
			x.created[name] = true
		case !errors.Is(err, fs.ErrExist):
			return err
		}
		x.dirs[name] = true // clear left only a real directory here
		// A directory that was there before (clear kept it: a real
		// directory, not a link) keeps its mode: only ours take the
		// entry's.
		if x.created[name] {
			x.dirModes[name] = mode(hdr.Mode)
		}
		return nil

	case tar.TypeSymlink:
		target := hdr.Linkname
		if target == "" {
			return fmt.Errorf("%w: symbolic link %s has an empty target", ErrUnsafe, hdr.Name)
		}
		if path.IsAbs(target) {
			return fmt.Errorf("%w: symbolic link %s -> %s is absolute", ErrUnsafe, hdr.Name, target)
		}
		if j := path.Join(path.Dir(name), target); j == ".." || strings.HasPrefix(j, "../") {
			return fmt.Errorf("%w: symbolic link %s -> %s leaves the root", ErrUnsafe, hdr.Name, target)
		}
		x.walk(name)
		if err := x.root.Symlink(target, name); err != nil {
			return err
		}
		x.links = append(x.links, name)
		return nil

	case tar.TypeLink:
		target, err := entryPath(hdr.Linkname)
		if err != nil || target == "." {
			return fmt.Errorf("%w: hard link %s -> %s leaves the root", ErrUnsafe, hdr.Name, hdr.Linkname)
		}
		if err := checkDepth(target, hdr.Linkname); err != nil {
			return err
		}
		if err := x.parents(target, hdr.Linkname); err != nil {
			return err
		}
		x.walk(target)
		fi, err := x.root.Lstat(target)
		if err != nil {
			return fmt.Errorf("hard link %s -> %s: %w", hdr.Name, hdr.Linkname, err)
		}
		if !fi.Mode().IsRegular() {
			// A second name for a symbolic link would resolve its relative
			// target from another directory.
			return fmt.Errorf("%w: hard link %s -> %s: target is not a regular file", ErrUnsafe, hdr.Name, hdr.Linkname)
		}
		x.walk(target)
		x.walk(name)
		return x.root.Link(target, name)

	default: // regular file
		// O_EXCL: clear removed whatever was there, and a symbolic link
		// raced in is never followed.
		x.walk(name)
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, ctxReader{x.ctx, io.LimitReader(body, maxExtract-x.written+1)})
		x.written += n
		if err == nil && x.written > maxExtract {
			err = fmt.Errorf("%w: %w: tarball expands beyond %d bytes", ErrUnsafe, ErrLimit, maxExtract)
		}
		if err == nil {
			err = f.Chmod(mode(hdr.Mode))
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		return nil
	}
}

// entryPath cleans a tar entry name into a path relative to the root, or
// refuses it.
func entryPath(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty entry name", ErrUnsafe)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %s is an absolute path", ErrUnsafe, name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %s has a \"..\" component", ErrUnsafe, name)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: %q contains NUL", ErrUnsafe, name)
	}
	return path.Clean(name), nil
}

// checkDepth refuses a path deeper than maxDepth components.
func checkDepth(name, orig string) error {
	if d := strings.Count(name, "/") + 1; d > maxDepth {
		return fmt.Errorf("%w: %w: %s is %d components deep, deeper than %d", ErrUnsafe, ErrLimit, orig, d, maxDepth)
	}
	return nil
}

// parents makes sure every directory above name is a real directory (not a
// symbolic link), creating missing ones with mode 0755 and noting them as
// created. A directory made or checked earlier in this extraction is not
// looked at again: nothing the extraction does turns a directory into
// anything else (clear never replaces one). The rest are walked down from
// the deepest known one, each looked up in its parent, so an entry costs
// its own depth, not the square of it.
func (x *extractor) parents(name, orig string) error {
	dir := path.Dir(name)
	if dir == "." || x.dirs[dir] {
		return nil
	}
	// The deepest known ancestor: everything above it was checked.
	start := 0
	for i := len(dir); i > 0; i-- {
		if dir[i-1] == '/' && x.dirs[dir[:i-1]] {
			start = i
			break
		}
	}
	parent := x.root
	if start > 0 {
		x.walk(dir[:start-1])
		r, err := x.root.OpenRoot(dir[:start-1])
		if err != nil {
			return err
		}
		parent = r
	}
	defer func() {
		if parent != x.root {
			parent.Close()
		}
	}()
	for i := start; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		cur, c := dir[:i], dir[start:i]
		start = i + 1
		x.walk(c)
		fi, err := parent.Lstat(c)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.count(); err != nil {
				return err
			}
			if err := parent.Mkdir(c, 0o755); err != nil {
				return err
			}
			x.created[cur] = true
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s would be written through the symbolic link %s", ErrUnsafe, orig, cur)
		case !fi.IsDir():
			return fmt.Errorf("%s: %s is not a directory", orig, cur)
		}
		x.dirs[cur] = true
		if i == len(dir) {
			break
		}
		// c was just seen to be a real directory; nothing else writes
		// into the release while it is being made.
		x.walk(c)
		next, err := parent.OpenRoot(c)
		if err != nil {
			return err
		}
		if parent != x.root {
			parent.Close()
		}
		parent = next
	}
	return nil
}

// clear removes what sits at name unless it is a directory and the entry is
// one too; a directory is never replaced.
func (x *extractor) clear(name string, hdr *tar.Header) error {
	if x.dirs[name] {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return fmt.Errorf("%s would replace a directory", hdr.Name)
	}
	x.walk(name)
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return fmt.Errorf("%s would replace a directory", hdr.Name)
	}
	return x.root.Remove(name)
}

// resolveInside follows name (relative to r) component by component the way
// the kernel would, and reports an error if the walk ever goes above the root
// or meets an absolute link. Missing components count as directories, so a
// link that dangles now cannot escape once its target is created.
// Components in dirs are known real directories and are not looked at.
func resolveInside(r *os.Root, name string, dirs map[string]bool) error {
	var stack []string // resolved components; none is a symbolic link
	todo := strings.Split(name, "/")
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return errors.New("resolves above the root")
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		cur := strings.Join(stack, "/")
		if dirs[cur] {
			continue
		}
		fi, err := r.Lstat(cur)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if hops++; hops > maxLinkHops {
			return errors.New("too many levels of symbolic links")
		}
		target, err := r.Readlink(cur)
		if err != nil {
			return err
		}
		if path.IsAbs(target) {
			return fmt.Errorf("%s -> %s is absolute", cur, target)
		}
		stack = stack[:len(stack)-1]
		todo = append(strings.Split(target, "/"), todo...)
	}
	return nil
}
