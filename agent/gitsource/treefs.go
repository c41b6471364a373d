package gitsource

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxTreeBytes caps the content read into a Snapshot's FS: the manifest
// directory holds small YAML files, and a tree far larger than this is a
// misconfigured repo.path.
const maxTreeBytes = 64 << 20

// treeFS is an immutable in-memory copy of a directory of a git tree. It is
// read from the object store once, so it stays valid and safe for concurrent
// use while later Polls fetch into the clone. Symlinks and submodules are
// left out.
type treeFS struct {
	nodes map[string]*node // by slash path; "." is the root
}

type node struct {
	name    string
	mode    fs.FileMode
	modTime time.Time
	data    []byte
	entries []fs.DirEntry // sorted by name, directories only
}

// newTreeFS copies tree into memory, stamping every file with modTime.
func newTreeFS(tree *object.Tree, modTime time.Time) (*treeFS, error) {
	t := &treeFS{nodes: map[string]*node{}}
	var total int64
	var walk func(tr *object.Tree, dir string) (*node, error)
	walk = func(tr *object.Tree, dir string) (*node, error) {
		d := &node{name: path.Base(dir), mode: fs.ModeDir | 0o755, modTime: modTime}
		t.nodes[dir] = d
		for _, e := range tr.Entries {
			p := path.Join(dir, e.Name)
			var n *node
			switch e.Mode {
			case filemode.Dir:
				sub, err := tr.Tree(e.Name)
				if err != nil {
					return nil, fmt.Errorf("tree %s: %w", p, err)
				}
				if n, err = walk(sub, p); err != nil {
					return nil, err
				}
			case filemode.Regular, filemode.Deprecated, filemode.Executable:
				f, err := tr.TreeEntryFile(&e)
				if err != nil {
					return nil, fmt.Errorf("blob %s: %w", p, err)
				}
				total += f.Size
				if total > maxTreeBytes {
					return nil, fmt.Errorf("%s: more than %d bytes under the manifest directory", p, maxTreeBytes)
				}
				data, err := readBlob(f)
				if err != nil {
					return nil, fmt.Errorf("blob %s: %w", p, err)
				}
				perm := fs.FileMode(0o644)
				if e.Mode == filemode.Executable {
					perm = 0o755
				}
				n = &node{name: e.Name, mode: perm, modTime: modTime, data: data}
				t.nodes[p] = n
			default:
				continue // symlink or submodule
			}
			d.entries = append(d.entries, fs.FileInfoToDirEntry(n.info()))
		}
		slices.SortFunc(d.entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		return d, nil
	}
	if _, err := walk(tree, "."); err != nil {
		return nil, err
	}
	t.nodes["."].name = "."
	return t, nil
}

func readBlob(f *object.File) ([]byte, error) {
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
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
func (i fileInfo) Size() int64        { return int64(len(i.n.data)) }
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
