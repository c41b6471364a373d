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

// Load reads every manifest in dir of fsys: the files named *.yaml or *.yml
// (other files, such as a README, and dot files are ignored), decodes and
// validates each, and checks them against each other: the service equals
// the file name without its extension, no service is defined twice and no
// hostname is routed to two services. It returns the services sorted by
// name, or nil and Errors with every problem in every file (errors.Is
// ErrInvalid). An empty dir is valid and gives no services. A failure to
// read is returned as such, wrapped, and is not ErrInvalid.
func Load(fsys fs.FS, dir string) ([]Service, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read manifest dir %s: %w", dir, err)
	}
	var (
		errs    Errors
		decoded []*decoder
		files   = map[string]string{} // service -> file
	)
	for _, e := range entries {
		name := e.Name()
		ext := path.Ext(name)
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		file := path.Join(dir, name)
		if e.IsDir() {
			errs = append(errs, &Error{File: file, Msg: "is a directory; manifests are files"})
			continue
		}
		data, err := readFile(fsys, file)
		if err != nil {
			return nil, err
		}
		d := decode(file, data)
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
