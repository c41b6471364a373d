package artifact_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/artifact"
)

func TestDownload(t *testing.T) {
	content := []byte("base.txz content\n")
	srv := newServer(t, map[string][]byte{"/base.txz": content, "/MANIFEST": []byte("manifest\n")})
	ctx := context.Background()
	tests := []struct {
		name    string
		url     string
		max     int64
		sum     string
		want    []byte // content of dst, nil: no dst
		wantErr error
	}{
		{"verified", srv.URL + "/base.txz", 0, sum(content), content, nil},
		{"sum in upper case", srv.URL + "/base.txz", 0, strings.ToUpper(sum(content)), content, nil},
		{"no sum", srv.URL + "/MANIFEST", 0, "", []byte("manifest\n"), nil},
		{"checksum mismatch", srv.URL + "/base.txz", 0, sum([]byte("other")), nil, artifact.ErrChecksum},
		{"bad sum", srv.URL + "/base.txz", 0, "abc", nil, artifact.ErrChecksum},
		{"not found", srv.URL + "/nope", 0, "", nil, artifact.ErrFetch},
		{"over the limit", srv.URL + "/base.txz", 4, "", nil, artifact.ErrFetch},
		{"over the limit, no length", srv.URL + "/chunked", 1024, "", nil, artifact.ErrFetch},
		{"file URL", "file:///etc/hostname", 0, "", nil, artifact.ErrFetch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "media") // created by Download
			dst := filepath.Join(dir, "x")
			err := artifact.Download(ctx, nil, tt.url, dst, tt.max, tt.sum)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Download = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got, rerr := os.ReadFile(dst)
			switch {
			case tt.want == nil && rerr == nil:
				t.Errorf("dst written after an error: %q", got)
			case tt.want != nil && string(got) != string(tt.want):
				t.Errorf("dst = %q, %v; want %q", got, rerr, tt.want)
			}
			if tt.want != nil {
				if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o644 {
					t.Errorf("dst mode %v, %v; want 0644", st.Mode().Perm(), err)
				}
			}
			// Nothing but dst is left in the directory.
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "x" {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
	// A checksum error never names the actual sum (see Fetch).
	err := artifact.Download(ctx, nil, srv.URL+"/base.txz", filepath.Join(t.TempDir(), "y"), 0, sum([]byte("other")))
	if err == nil || strings.Contains(err.Error(), sum(content)) {
		t.Errorf("error names the actual sum: %v", err)
	}
	// An existing dst is replaced only by a verified download.
	dst := filepath.Join(t.TempDir(), "z")
	if err := os.WriteFile(dst, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := artifact.Download(ctx, nil, srv.URL+"/base.txz", dst, 0, sum([]byte("other"))); !errors.Is(err, artifact.ErrChecksum) {
		t.Fatalf("Download = %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Errorf("dst replaced by an unverified download: %q", b)
	}
}

// DownloadProgress reports every byte once, in order, with the announced
// size (-1 without a Content-Length), and changes nothing else: the file
// is the same, and a mismatch still leaves no file.
func TestDownloadProgress(t *testing.T) {
	// Small enough that net/http sets Content-Length by itself.
	content := []byte(strings.Repeat("base.txz\n", 100))
	srv := newServer(t, map[string][]byte{"/base.txz": content})
	for _, tt := range []struct {
		name, path string
		total      int64
	}{
		{"with length", "/base.txz", int64(len(content))},
		{"chunked", "/chunked", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "x")
			var calls, last int64
			err := artifact.DownloadProgress(context.Background(), nil, srv.URL+tt.path, dst, 0, "", func(done, total int64) {
				calls++
				if done <= last || total != tt.total {
					t.Errorf("progress(%d, %d) after %d, want growing done and total %d", done, total, last, tt.total)
				}
				last = done
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if last != int64(len(got)) || calls == 0 {
				t.Errorf("progress ended at %d after %d calls, the file has %d bytes", last, calls, len(got))
			}
		})
	}
	dst := filepath.Join(t.TempDir(), "x")
	err := artifact.DownloadProgress(context.Background(), nil, srv.URL+"/base.txz", dst, 0, sum([]byte("other")), func(int64, int64) {})
	if !errors.Is(err, artifact.ErrChecksum) {
		t.Fatalf("DownloadProgress = %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("dst after a mismatch: %v", err)
	}
}
