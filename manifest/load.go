package manifest

import (
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Load reads every manifest in dir of fsys: the entries named *.yaml or
// *.yml (IsManifestName; other files, such as a README, dot files and
// subdirectories are ignored), decodes and
// validates each, and checks them against each other: the service equals
// the file name without its extension, no service is defined twice and no
// hostname is routed to two services. It returns the services sorted by
// name, or nil and Errors with every problem in every file (errors.Is
// ErrInvalid). A manifest name that is a directory, a symlink (never
// followed) or not a regular file is an error, and so is a dir of more
// than MaxEntries entries or more than MaxTotalSize bytes of manifests. An
// empty dir is valid and gives no services. A failure to read is returned
// as such, wrapped, and is not ErrInvalid.
func Load(fsys fs.FS, dir string) ([]Service, error) {
	return LoadPolicy(fsys, dir, Policy{})
}

// LoadPolicy is Load with the operator's policy: a manifest that asks for
// what p does not allow is an error naming its file, line and field. It is
// the one place where the policy is checked, for `jailkeeper validate` and
// the agent alike; Load applies the default policy.
func LoadPolicy(fsys fs.FS, dir string, p Policy) ([]Service, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read manifest dir %s: %w", dir, err)
	}
	if len(entries) > MaxEntries {
		return nil, Errors{{File: dir, Msg: fmt.Sprintf("holds %d entries, more than %d", len(entries), MaxEntries)}}
	}
	var (
		errs     Errors
		decoded  []*decoder
		files    = map[string]string{} // service -> file
		total    int
		tooLarge bool
	)
	for _, e := range entries {
		name := e.Name()
		if !IsManifestName(name) {
			continue
		}
		ext := path.Ext(name)
		file := path.Join(dir, name)
		if !fs.ValidPath(name) {
			// Not UTF-8 (git and most file systems allow any bytes).
			errs = append(errs, &Error{File: file, Msg: "the file name is not valid UTF-8; name manifests <service>.yaml"})
			continue
		}
		switch t := e.Type(); {
		case t.IsDir():
			errs = append(errs, &Error{File: file, Msg: "is a directory; manifests are files"})
			continue
		case t&fs.ModeSymlink != 0:
			// The agent reads the deploy repo from git objects and never
			// follows a link; validate must not either, nor show where
			// the link points.
			errs = append(errs, &Error{File: file, Msg: "is a symlink; a manifest must be a regular file in the manifest directory (symlinks are not followed)"})
			continue
		case !t.IsRegular():
			errs = append(errs, &Error{File: file, Msg: "is not a regular file"})
			continue
		}
		data, err := readFile(fsys, file)
		if err != nil {
			return nil, err
		}
		total += len(data)
		if total > MaxTotalSize && !tooLarge {
			tooLarge = true
			errs = append(errs, &Error{File: dir, Msg: fmt.Sprintf("the manifests are larger than %d bytes together", MaxTotalSize)})
		}
		d := decode(file, data)
		if d.svc != nil {
			p.check(d.svc, func(field, format string, args ...any) {
				if !d.isBad(field) {
					d.errorf(field, format, args...)
				}
			})
		}
		decoded = append(decoded, d)
		stem := strings.TrimSuffix(name, ext)
		if other, dup := files[stem]; dup {
			d.errorAt(0, "", "defines service %q again; it is already in %s", stem, other)
		}
		files[stem] = file
		if d.svc != nil && !d.isBad("service") && d.svc.Service != stem {
			d.errorf("service", "must equal the file name: service %q is in %s; rename the file to %s%s",
				d.svc.Service, name, d.svc.Service, ext)
		}
	}
	routed := map[string]string{} // hostname -> "service (file:line)"
	for _, d := range decoded {
		if d.svc == nil || d.isBad("hostnames") {
			continue
		}
		for i, h := range d.svc.Hostnames {
			f := fmt.Sprintf("hostnames[%d]", i)
			if d.isBad(f) {
				continue
			}
			if other, dup := routed[h]; dup {
				d.errorf(f, "%q is already a hostname of %s; a hostname routes to one service", h, other)
				continue
			}
			routed[h] = fmt.Sprintf("service %q (%s:%d)", d.svc.Service, d.file, d.lines[f])
		}
	}
	var svcs []Service
	for _, d := range decoded {
		errs = append(errs, d.errs...)
		if d.svc != nil {
			svcs = append(svcs, *d.svc)
		}
	}
	if err := asError(errs); err != nil {
		return nil, err
	}
	slices.SortFunc(svcs, func(a, b Service) int { return cmp.Compare(a.Service, b.Service) })
	return svcs, nil
}

// readFile reads at most MaxFileSize+1 bytes, so decode can refuse an
// oversized file without it all in memory.
func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", name, err)
	}
	return data, nil
}

// IsManifestName reports whether an entry of a manifest directory named
// name is a manifest: *.yaml or *.yml, not a dot file. The agent reads
// nothing else of the deploy repo.
func IsManifestName(name string) bool {
	ext := path.Ext(name)
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}
