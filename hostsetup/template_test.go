package hostsetup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/hostsetup"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
	"github.com/jailkeeper/jailkeeper/internal/golden"
)

const tds = "zroot/jails/templates/14.3-RELEASE"

// release serves a release directory (MANIFEST, base.txz) on 127.0.0.1.
// The MANIFEST is the derived fixture with its placeholders filled in: the
// real sha256 of the served base.txz, "0" entries elsewhere.
type release struct {
	srv      *httptest.Server
	base     []byte
	manifest string
	hits     atomic.Int32
}

func newRelease(t *testing.T) *release {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.Close()
	rel := &release{base: buf.Bytes()}
	sum := sha256.Sum256(rel.base)
	m := string(fixture(t, "manifest-14.x.DERIVED.txt"))
	m = strings.Replace(m, "<64-hex-sha256>", strings.Repeat("0", 64), 1) // base-dbg.txz
	m = strings.Replace(m, "<64-hex-sha256>", hex.EncodeToString(sum[:]), 1)
	m = strings.ReplaceAll(strings.ReplaceAll(m, "<64-hex-sha256>", strings.Repeat("f", 64)), "<N>", "0")
	rel.manifest = m
	rel.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rel.hits.Add(1)
		switch r.URL.Path {
		case "/releases/amd64/14.3-RELEASE/MANIFEST":
			w.Write([]byte(rel.manifest))
		case "/releases/amd64/14.3-RELEASE/base.txz":
			w.Write(rel.base)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(rel.srv.Close)
	return rel
}

func templateConfig(t *testing.T, rel *release) (hostsetup.TemplateConfig, string) {
	tmp := t.TempDir()
	resolv := filepath.Join(tmp, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 192.0.2.53\n"), 0o644)
	cfg := hostsetup.TemplateConfig{
		Dataset: "zroot/jails", Root: filepath.Join(tmp, "jails"), Version: "14.3-RELEASE",
		Arch: "amd64", ResolvConf: resolv, Localtime: filepath.Join(tmp, "no-localtime"),
		Now: func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) },
	}
	if rel != nil {
		cfg.URL = rel.srv.URL + "/releases/amd64/14.3-RELEASE/"
	}
	return cfg, tmp
}

// missing makes zfs list say that ds does not exist (errors.md, REAL).
func missing(r *commandtest.Replay, ds string) {
	r.On([]string{"zfs", "list", "-H", "-o", "name", ds}, commandtest.Fail(1, "cannot open '"+ds+"': dataset does not exist\n"))
}

func TestTemplateCreateFresh(t *testing.T) {
	rel := newRelease(t)
	cfg, tmp := templateConfig(t, rel)
	var r commandtest.Replay
	missing(&r, tds)
	var out bytes.Buffer
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &out); err != nil {
		t.Fatal(err)
	}
	tr := strings.ReplaceAll(r.Transcript(), tmp, "<tmp>")
	golden.Assert(t, "testdata/golden/template-create-fresh.transcript", []byte(tr))
	base, err := os.ReadFile(filepath.Join(cfg.Root, "media", "14.3-RELEASE-base.txz"))
	if err != nil || !bytes.Equal(base, rel.base) {
		t.Errorf("downloaded base.txz: %v", err)
	}
	// Each step says what it does; the download and the unpack end with
	// their totals (the replayed tar reads base.txz from its stdin).
	for _, want := range []string{
		"skipped: the host has no " + cfg.Localtime,
		"# download base.txz: 1.5 KiB in 0s\n",
		"# unpack 14.3-RELEASE-base.txz: 1.5 KiB in 0s\n",
		"# snapshot: releases are cloned from " + tds + "@base\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// A second run reuses the download while it matches the MANIFEST.
	hits := rel.hits.Load()
	r.Reset()
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got := rel.hits.Load() - hits; got != 1 {
		t.Errorf("%d requests on the second run, want 1 (the MANIFEST)", got)
	}
}

func TestTemplateCreateChecksumMismatch(t *testing.T) {
	rel := newRelease(t)
	rel.base = append(rel.base, 0) // not what the MANIFEST says
	cfg, _ := templateConfig(t, rel)
	var r commandtest.Replay
	missing(&r, tds)
	err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &bytes.Buffer{})
	if !errors.Is(err, artifact.ErrChecksum) {
		t.Fatalf("TemplateCreate = %v, want ErrChecksum", err)
	}
	if strings.Contains(r.Transcript(), "zfs create") || strings.Contains(r.Transcript(), "tar") {
		t.Errorf("went on after a bad checksum:\n%s", r.Transcript())
	}
	matches, _ := filepath.Glob(filepath.Join(cfg.Root, "media", "*base.txz*"))
	if len(matches) != 0 {
		t.Errorf("unverified download kept: %v", matches)
	}
}

func TestTemplateCreateRefusesTemplateWithClones(t *testing.T) {
	rel := newRelease(t)
	cfg, _ := templateConfig(t, rel)
	var r commandtest.Replay
	// zfs-destroy-snapshot-with-clones.14.1.txt (REAL): stderr is lines 2-4.
	lines := strings.SplitN(string(fixture(t, "zfs-destroy-snapshot-with-clones.14.1.txt")), "\n", 2)
	r.On([]string{"zfs", "destroy", "-n", "-r", tds}, commandtest.Fail(1, lines[1]))
	err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &bytes.Buffer{})
	if !errors.Is(err, hostsetup.ErrTemplateInUse) || !strings.Contains(err.Error(), "zroot/ROOT/14.1-RELEASE_2024-07-18_213402") {
		t.Fatalf("TemplateCreate = %v, want ErrTemplateInUse naming the clone", err)
	}
	if rel.hits.Load() != 0 {
		t.Error("downloaded for a template it cannot replace")
	}
	if strings.Contains(r.Transcript(), "zfs destroy -r") || strings.Contains(r.Transcript(), "zfs create") {
		t.Errorf("changed datasets:\n%s", r.Transcript())
	}
}

func TestTemplateCreateReplacesUnusedTemplate(t *testing.T) {
	rel := newRelease(t)
	cfg, _ := templateConfig(t, rel)
	var r commandtest.Replay
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	tr := r.Transcript()
	for _, want := range []string{"zfs destroy -n -r " + tds + "\n", "zfs destroy -r " + tds + "\n", "zfs create " + tds + "\n", "zfs snapshot " + tds + "@base\n"} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q:\n%s", want, tr)
		}
	}
}

func TestTemplateCreateUpdateExisting(t *testing.T) {
	cfg, tmp := templateConfig(t, nil)
	cfg.Update = true
	var r commandtest.Replay
	dir := filepath.Join(cfg.Root, "templates", "14.3-RELEASE")
	upd := []string{"env", "PAGER=/bin/cat", "freebsd-update", "--not-running-from-cron", "--currently-running", "14.3-RELEASE", "-b", dir, "fetch", "install"}
	// On an existing template this is template update: it rolls back to
	// the newest snapshot on failure (the listing prints names only, see
	// newTemplateUpdate).
	r.On([]string{"zfs", "list", "-H", "-t", "snapshot", "-d", "1", "-s", "createtxg", "-o", "name", tds}, commandtest.OK(tds+"@base\n"))
	// Nothing to install: exit 1 and this line (iocage #113 and
	// freebsd-src #543 show it in real output) is still success.
	r.On(upd, commandtest.Response{Exit: 1, Stdout: []byte("No updates are available to fetch.\nNo updates are available to install.\n")})
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "testdata/golden/template-update.transcript", []byte(strings.ReplaceAll(r.Transcript(), tmp, "<tmp>")))

	// A real failure is one, and the template is rolled back.
	r.On(upd, commandtest.Fail(1, "freebsd-update: cannot fetch\n"))
	r.Reset()
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &bytes.Buffer{}); err == nil {
		t.Error("freebsd-update failure ignored")
	}
	if !strings.HasSuffix(r.Transcript(), "zfs rollback -r "+tds+"@base\n") {
		t.Errorf("not rolled back:\n%s", r.Transcript())
	}
}

func TestTemplateCreateLocalFile(t *testing.T) {
	rel := newRelease(t)
	cfg, tmp := templateConfig(t, nil)
	dist := filepath.Join(tmp, "freebsd-dist")
	os.MkdirAll(dist, 0o755)
	os.WriteFile(filepath.Join(dist, "base.txz"), rel.base, 0o644)
	os.WriteFile(filepath.Join(dist, "MANIFEST"), []byte(rel.manifest), 0o644)
	cfg.File = filepath.Join(dist, "base.txz")
	var r commandtest.Replay
	missing(&r, tds)
	var out bytes.Buffer
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Transcript(), "--unlink -f -\n") || !strings.Contains(out.String(), "--unlink -f - < "+cfg.File+"\n") {
		t.Errorf("transcript:\n%s\noutput:\n%s", r.Transcript(), out.String())
	}
	os.WriteFile(cfg.File, append(rel.base, 1), 0o644)
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &bytes.Buffer{}); !errors.Is(err, artifact.ErrChecksum) {
		t.Errorf("bad local file: %v", err)
	}
	if err := hostsetup.TemplateCreate(context.Background(), hostsetup.TemplateConfig{Dataset: "zroot/jails", Root: "/j", Version: "latest"}, &r, true, &bytes.Buffer{}); err == nil {
		t.Error("bad version accepted")
	}
}
