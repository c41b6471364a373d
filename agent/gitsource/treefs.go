package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/jailkeeper/jailkeeper/manifest"
)

// maxTreeObject bounds the encoded size of every tree object Poll decodes:
// the root tree, those on repo.path and the manifest directory. It is
// checked from the object's header before the tree is read. A tree of
// manifest.MaxEntries entries with names of a few hundred bytes fits.
const maxTreeObject = 4 << 20

// treeFS is an immutable in-memory copy of the manifest directory of a
// commit. It is read from the object store once, so it stays valid and safe
// for concurrent use while later Polls fetch into the clone.
//
// It holds only what manifest.Load looks at: the directory's entries whose
// names make them manifests (manifest.IsManifestName). A regular file is
// there with its content, read up to manifest.MaxFileSize+1 bytes; a
// subdirectory or submodule is an empty directory (its tree is never
// opened); a symlink is a symlink without a target (its blob is never
// read), which Load refuses. Every other entry is left out unread.
type treeFS struct {
	nodes map[string]*node // by slash path; "." is the root
}

type node struct {
	name    string
	mode    fs.FileMode
	size    int64 // the blob's size, which may exceed len(data)
	modTime time.Time
	data    []byte
	entries []fs.DirEntry // sorted by name, directories only
}

// objectReader is what reading a commit's trees and blobs needs of the clone.
type objectReader interface {
	EncodedObject(plumbing.ObjectType, plumbing.Hash) (plumbing.EncodedObject, error)
	EncodedObjectSize(plumbing.Hash) (int64, error)
}

// loadTree decodes tree h after checking its size from the object header.
func loadTree(st objectReader, h plumbing.Hash, what string) (*object.Tree, error) {
	size, err := st.EncodedObjectSize(h)
	if err != nil {
		return nil, fmt.Errorf("%s: tree %s: %w", what, h, err)
	}
	if size > maxTreeObject {
		return nil, fmt.Errorf("%s: tree object of %d bytes, more than %d: %w", what, size, maxTreeObject, ErrLimit)
	}
	obj, err := st.EncodedObject(plumbing.TreeObject, h)
	if err != nil {
		return nil, fmt.Errorf("%s: tree %s: %w", what, h, err)
	}
	t := &object.Tree{}
	if err := t.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s: tree %s: %w", what, h, err)
	}
	return t, nil
}

// findDir follows dir (slash separated, "." for the root) down from tree
// root, decoding only the trees on that path. ok is false when a component
// is missing or not a directory.
func findDir(st objectReader, root plumbing.Hash, dir string) (h plumbing.Hash, ok bool, err error) {
	h = root
	if dir == "." {
		return h, true, nil
	}
	for _, name := range strings.Split(dir, "/") {
		t, err := loadTree(st, h, "repo.path")
		if err != nil {
			return h, false, err
		}
		found := false
		for _, e := range t.Entries {
			if e.Name == name {
				if e.Mode != filemode.Dir {
					return h, false, nil
				}
				h, found = e.Hash, true
				break
			}
		}
		if !found {
			return h, false, nil
		}
	}
	return h, true, nil
}

// newTreeFS reads the manifest directory, tree dir, stamping every file
// with modTime. Every limit (manifest.MaxEntries, manifest.MaxTotalSize,
// maxTreeObject) is checked, from the tree and the blobs' headers, before
// any blob is read; a breach is an error wrapping ErrLimit. It stops with
// ctx's error when ctx ends.
func newTreeFS(ctx context.Context, st objectReader, dir plumbing.Hash, modTime time.Time) (*treeFS, error) {
	tree, err := loadTree(st, dir, "manifest directory")
	if err != nil {
		return nil, err
	}
	if n := len(tree.Entries); n > manifest.MaxEntries {
		return nil, fmt.Errorf("manifest directory: %d entries, more than %d: %w", n, manifest.MaxEntries, ErrLimit)
	}
	root := &node{name: ".", mode: fs.ModeDir | 0o755, modTime: modTime}
	t := &treeFS{nodes: map[string]*node{".": root}}
	type blob struct {
		n *node
		h plumbing.Hash
	}
	var (
		blobs []blob
		total int64
	)
	for _, e := range tree.Entries {
		if !manifest.IsManifestName(e.Name) {
			continue
		}
		n := &node{name: e.Name, modTime: modTime}
		switch e.Mode {
		case filemode.Dir, filemode.Submodule:
			n.mode = fs.ModeDir | 0o755
		case filemode.Symlink:
			n.mode = fs.ModeSymlink | 0o777
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			n.mode = 0o644
			if e.Mode == filemode.Executable {
				n.mode = 0o755
			}
			size, err := st.EncodedObjectSize(e.Hash)
			if err != nil {
				return nil, fmt.Errorf("blob %s: %w", e.Name, err)
			}
			n.size = size
			total += min(size, manifest.MaxFileSize+1)
			if total > manifest.MaxTotalSize {
				return nil, fmt.Errorf("manifest directory: manifests of more than %d bytes together: %w", manifest.MaxTotalSize, ErrLimit)
			}
			blobs = append(blobs, blob{n, e.Hash})
		default:
			n.mode = fs.ModeIrregular
		}
		t.nodes[e.Name] = n
		root.entries = append(root.entries, fs.FileInfoToDirEntry(n.info()))
	}
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := readBlob(st, b.h, manifest.MaxFileSize+1)
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", b.n.name, err)
		}
		b.n.data = data
	}
	slices.SortFunc(root.entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return t, nil
}

// readBlob reads at most limit bytes of blob h.
func readBlob(st objectReader, h plumbing.Hash, limit int64) ([]byte, error) {
	obj, err := st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, limit))
}

func (n *node) info() fs.FileInfo { return fileInfo{n} }

func (t *treeFS) lookup(op, name string) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n, ok := t.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return n, nil
}

// Open implements fs.FS.
func (t *treeFS) Open(name string) (fs.File, error) {
	n, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if n.mode.IsDir() {
		return &openDir{node: n}, nil
	}
	return &openFile{node: n}, nil
}

// ReadFile implements fs.ReadFileFS; the caller may modify the result.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	n, err := t.lookup("readfile", name)
	if err != nil {
		return nil, err
	}
	if n.mode.IsDir() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errors.New("is a directory")}
	}
	return slices.Clone(n.data), nil
}

// ReadDir implements fs.ReadDirFS.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := t.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return slices.Clone(n.entries), nil
}

// Stat implements fs.StatFS.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	n, err := t.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return n.info(), nil
}

type fileInfo struct{ n *node }

func (i fileInfo) Name() string       { return i.n.name }
func (i fileInfo) Size() int64        { return i.n.size }
func (i fileInfo) Mode() fs.FileMode  { return i.n.mode }
func (i fileInfo) ModTime() time.Time { return i.n.modTime }
func (i fileInfo) IsDir() bool        { return i.n.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }

type openFile struct {
	node   *node
	offset int64
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.node.info(), nil }
func (f *openFile) Close() error               { return nil }

func (f *openFile) Read(b []byte) (int, error) {
	if f.offset >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.node.data[f.offset:])
	f.offset += int64(n)
	return n, nil
}

func (f *openFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.node.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.node.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *openFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.offset
	case io.SeekEnd:
		offset += int64(len(f.node.data))
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.node.name, Err: fs.ErrInvalid}
	}
	f.offset = offset
	return offset, nil
}

type openDir struct {
	node   *node
	offset int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.node.info(), nil }
func (d *openDir) Close() error               { return nil }

func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.node.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *openDir) ReadDir(count int) ([]fs.DirEntry, error) {
	rest := d.node.entries[d.offset:]
	if count > 0 {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		rest = rest[:min(count, len(rest))]
	}
	d.offset += len(rest)
	return slices.Clone(rest), nil
}
