package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/golden"
)

// manifestFor returns base for another service, port and hostname.
func manifestFor(service, hostname string) string {
	s := strings.Replace(base, "service: hello", "service: "+service, 1)
	return strings.Replace(s, "hostnames: [hello.example.com, www.hello.example.com]", "hostnames: ["+hostname+"]", 1)
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"deploy/services/hello.yaml":     file(base),
		"deploy/services/goodbye.yml":    file(manifestFor("goodbye", "goodbye.example.com")),
		"deploy/services/api.yaml":       file(manifestFor("api", "api.example.com")),
		"deploy/services/README.md":      file("# not a manifest\n"),
		"deploy/services/notes.txt":      file("service: [\n"),
		"deploy/services/.hello.yaml.sw": file("garbage"),
		"deploy/services/.draft.yaml":    file("service: [\n"), // dot files are ignored
		"deploy/services/old/x.yaml":     file("service: [\n"), // subdirectories are not read
	}
	svcs, err := Load(fsys, "deploy/services")
	if err != nil {
		t.Fatal(err)
	}
	var names, files []string
	for _, s := range svcs {
		names = append(names, s.Service)
		files = append(files, s.File)
	}
	if diff := cmp.Diff([]string{"api", "goodbye", "hello"}, names); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	want := []string{"deploy/services/api.yaml", "deploy/services/goodbye.yml", "deploy/services/hello.yaml"}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestLoadEmpty(t *testing.T) {
	fsys := fstest.MapFS{"services/README.md": file("nothing yet\n")}
	svcs, err := Load(fsys, "services")
	if err != nil || len(svcs) != 0 {
		t.Errorf("Load(empty) = %v, %v; want no services and no error", svcs, err)
	}
}

func TestLoadMissingDir(t *testing.T) {
	_, err := Load(fstest.MapFS{}, "services")
	if err == nil || errors.Is(err, ErrInvalid) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing dir) = %v; want fs.ErrNotExist and not ErrInvalid", err)
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		want []string // problems, each the start of one line
	}{
		{
			name: "service is not the file name",
			fsys: fstest.MapFS{"s/goodbye.yaml": file(base)},
			want: []string{`s/goodbye.yaml:1: service: must equal the file name: service "hello" is in goodbye.yaml; rename the file to hello.yaml`},
		},
		{
			name: "hostname of two services",
			fsys: fstest.MapFS{
				"s/hello.yaml": file(base),
				"s/www.yaml":   file(manifestFor("www", "www.hello.example.com")),
			},
			want: []string{`s/www.yaml:6: hostnames[0]: "www.hello.example.com" is already a hostname of service "hello" (s/hello.yaml:6)`},
		},
		{
			name: "service in .yaml and .yml",
			fsys: fstest.MapFS{
				"s/hello.yaml": file(base),
				"s/hello.yml":  file(manifestFor("hello", "other.example.com")),
			},
			want: []string{`s/hello.yml: defines service "hello" again; it is already in s/hello.yaml`},
		},
		{
			name: "directory named like a manifest",
			fsys: fstest.MapFS{"s/hello.yaml/x": file(base)},
			want: []string{"s/hello.yaml: is a directory"},
		},
		{
			name: "problems in several files",
			fsys: fstest.MapFS{
				"s/a.yaml": file(manifestFor("a", "a.example.com") + "port: 1\n"),
				"s/b.yaml": file(manifestFor("b", "B.example.com")),
				"s/c.yaml": file(manifestFor("c", "c.example.com")),
			},
			want: []string{
				"s/a.yaml:8: port: duplicate key (first set on line 7)",
				"s/b.yaml:6: hostnames[0]: must be lowercase",
			},
		},
		{
			name: "too large",
			fsys: fstest.MapFS{"s/hello.yaml": file(base + "#" + strings.Repeat("x", MaxFileSize))},
			want: []string{"s/hello.yaml: file is larger than 1048576 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svcs, err := Load(tt.fsys, "s")
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load = %v, %v; want ErrInvalid", svcs, err)
			}
			if svcs != nil {
				t.Errorf("Load returned services with an error: %v", svcs)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], w)
				}
			}
		})
	}
}

// TestLoadGolden pins the whole report for a directory of broken manifests.
func TestLoadGolden(t *testing.T) {
	_, err := Load(os.DirFS("testdata"), "invalid")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load(testdata/invalid) = %v, want ErrInvalid", err)
	}
	golden.Assert(t, filepath.Join("testdata", "invalid.golden"), []byte(err.Error()+"\n"))
}
