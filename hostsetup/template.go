package hostsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
)

// ErrTemplateInUse: the template has clones (releases), so it is not
// replaced. Patch it instead (template update makes a newer snapshot), or
// destroy the releases first.
var ErrTemplateInUse = errors.New("template has clones")

// TemplateConfig says which template to make and from what.
type TemplateConfig struct {
	Dataset string // zroot/jails; the template is Dataset/templates/Version
	Root    string // Dataset's mountpoint; downloads go to Root/media
	Version string // a FreeBSD release, 14.3-RELEASE
	// URL is the release directory holding MANIFEST and base.txz. Default
	// ReleaseURL(Arch, Version).
	URL string
	// File is a local base.txz to use instead of downloading; the MANIFEST
	// is read from the same directory (as in /usr/freebsd-dist).
	File string
	// Arch is the FreeBSD architecture path, default the host's (amd64,
	// arm64/aarch64 ...).
	Arch string
	// Update runs freebsd-update on the template. On an existing template
	// it does what TemplateUpdate does (patch, pkg upgrade, a new snapshot
	// @<UTC time>, rollback on failure); new releases clone the newest
	// snapshot, existing ones keep theirs.
	Update bool
	// ResolvConf and Localtime are the host files copied into the
	// template; defaults /etc/resolv.conf and /etc/localtime. A
	// ResolvConf that names only loopback servers is refused
	// (ErrLoopbackResolver) unless Resolvers is set.
	ResolvConf, Localtime string
	// Resolvers (the config's jails.resolvers), when set, are written as
	// the template's resolv.conf nameserver lines instead of copying
	// ResolvConf.
	Resolvers []string
	// Pool is the config's jails.pool; the refusal of a loopback-only
	// resolv.conf shows the unbound lines that would serve its
	// interface's address.
	Pool netip.Prefix
	// Terminal says out is a terminal: download and unpack progress is
	// one line rewritten in place. Otherwise a line every few seconds.
	Terminal bool
	// Client downloads; default http.DefaultClient. Downloads are bound by
	// ctx and by maxDownload.
	Client *http.Client
	// Now names patch snapshots; default time.Now.
	Now func() time.Time
}

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+-(RELEASE|RC[0-9]+|BETA[0-9]+|ALPHA[0-9]+)$`)

// maxDownload bounds MANIFEST and base.txz downloads (base.txz of 14.x is
// about 200 MB).
const maxDownload = 4 << 30

// ReleaseArch is the download.freebsd.org path of the host's architecture
// (releases/<path>/<version>/).
func ReleaseArch() string {
	switch runtime.GOARCH {
	case "arm64":
		return "arm64/aarch64"
	case "386":
		return "i386"
	case "riscv64":
		return "riscv/riscv64"
	case "ppc64le":
		return "powerpc/powerpc64le"
	case "arm":
		return "arm/armv7"
	}
	return runtime.GOARCH
}

// ReleaseURL is where the FreeBSD project publishes a release's
// distribution files.
func ReleaseURL(arch, version string) string {
	return "https://download.freebsd.org/releases/" + arch + "/" + version + "/"
}

// TemplateCreate makes the template Dataset/templates/Version the way the
// FreeBSD Handbook's jails chapter does by hand: base.txz (downloaded into
// Root/media, or a local file) checked against the sha256 in the release's
// MANIFEST, a new dataset, `tar -x -C DIR --unlink -f base.txz`, a
// resolv.conf (Resolvers written as nameserver lines, or the host's
// copied; one naming only loopback servers is refused with
// ErrLoopbackResolver before anything is downloaded, see planResolvConf),
// the host's localtime copied in, optionally freebsd-update,
// and the snapshot @base that releases are cloned from. A base.txz that
// does not match the MANIFEST is an error wrapping artifact.ErrChecksum,
// before any dataset is touched; a failed transfer wraps artifact.ErrFetch.
//
// An existing template is replaced, unless it has clones (ErrTemplateInUse:
// zfs destroy -r, never -R, refuses and names them). With Update, an
// existing template is patched in place instead, as TemplateUpdate does,
// and gets a newer snapshot @<UTC time>; releases already cloned keep the
// snapshot they came from. Every command is printed to out before it
// runs; with dryRun nothing is downloaded, run or written (only the host's
// resolv.conf is read, so a dry run meets the refusal a real run would),
// and the steps of a fresh create are printed with the checks as comments.
func TemplateCreate(ctx context.Context, cfg TemplateConfig, r command.Runner, dryRun bool, out io.Writer) error {
	if !versionRE.MatchString(cfg.Version) {
		return fmt.Errorf("template create: %q is not a FreeBSD release name like 14.3-RELEASE", cfg.Version)
	}
	if cfg.Dataset == "" || !filepath.IsAbs(cfg.Root) {
		return fmt.Errorf("template create: invalid jails config (dataset %q, root %q)", cfg.Dataset, cfg.Root)
	}
	if cfg.Arch == "" {
		cfg.Arch = ReleaseArch()
	}
	if cfg.URL == "" {
		cfg.URL = ReleaseURL(cfg.Arch, cfg.Version)
	}
	if !strings.HasSuffix(cfg.URL, "/") {
		cfg.URL += "/"
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.Localtime == "" {
		cfg.Localtime = "/etc/localtime"
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &hostSteps{ctx: ctx, r: r, dry: dryRun, out: out}
	if dryRun {
		h.note("jailkeeper template create %s, dry run: nothing is downloaded, run or written.", cfg.Version)
	}
	if err := templateCreate(h, cfg); err != nil {
		return fmt.Errorf("template create %s: %w", cfg.Version, err)
	}
	return nil
}

func templateCreate(h *hostSteps, cfg TemplateConfig) error {
	tds := release.TemplateDataset(cfg.Dataset, cfg.Version)
	dir := filepath.Join(cfg.Root, "templates", cfg.Version)
	exists, err := h.zfsExists(tds)
	if err != nil {
		return err
	}
	complete := false
	if exists {
		if complete, err = h.zfsExists(tds + "@base"); err != nil {
			return err
		}
	}
	if h.dry {
		h.note("  when it exists: `template update` patches and snapshots it; otherwise it is")
		h.note("  replaced, unless releases were cloned from it (zfs destroy -r refuses then).")
	}
	if complete && cfg.Update {
		// The same as `template update`, which is the documented way.
		return templateUpdate(h, TemplateUpdateConfig{Dataset: cfg.Dataset, Root: cfg.Root, Name: cfg.Version, Now: cfg.Now})
	}
	// Refuse a resolv.conf the jails cannot use before downloading
	// anything.
	resolv, err := planResolvConf(cfg)
	if err != nil {
		return err
	}
	if exists {
		// Refuse before downloading anything: a dry-run destroy checks the
		// dependents like a real one (zfs-destroy(8) -n).
		if err := h.zfsCheck().CheckDestroy(h.ctx, tds); err != nil {
			return inUse(tds, err)
		}
	}
	base, err := fetchBase(h, cfg)
	if err != nil {
		return err
	}
	if exists {
		if err := h.zfsDo().Destroy(h.ctx, tds, 0); err != nil {
			return inUse(tds, err)
		}
	}
	h.note("the template dataset %s, mounted at %s", tds, dir)
	if err := h.zfsDo().Create(h.ctx, tds, nil); err != nil {
		return err
	}
	if err := unpack(h, cfg, dir, base); err != nil {
		return err
	}
	if err := applyResolvConf(h, resolv, dir); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Localtime); !h.dry && errors.Is(err, os.ErrNotExist) {
		h.note("skipped: the host has no %s", cfg.Localtime)
	} else if err := h.do("cp", cfg.Localtime, filepath.Join(dir, "etc", "localtime")); err != nil {
		return err
	}
	if cfg.Update {
		if err := freebsdUpdate(h, dir, cfg.Version); err != nil {
			return err
		}
	}
	h.note("snapshot: releases are cloned from %s@base", tds)
	if err := h.zfsDo().Snapshot(h.ctx, tds+"@base"); err != nil {
		return err
	}
	h.note("new releases clone %s@base", tds)
	return nil
}

// inUse turns zfs's refusal to destroy a template with clones into
// ErrTemplateInUse, naming the clones: "cannot destroy 'P/D@s': snapshot
// has dependent clones" / "use '-R' to destroy the following datasets:" /
// one dataset per line (jails/testdata/freebsd/FACTS.md §3, REAL on 14.1).
func inUse(tds string, err error) error {
	stderr := command.Stderr(err)
	if !strings.Contains(stderr, "dependent clones") {
		return err
	}
	_, list, _ := strings.Cut(stderr, "following datasets:")
	clones := strings.Fields(list)
	return fmt.Errorf("%w: %s has clones %s; patch it with `jailkeeper template update %s` or destroy those releases first", ErrTemplateInUse, tds, strings.Join(clones, ", "), tds[strings.LastIndex(tds, "/")+1:])
}

// freebsdUpdate patches the tree at dir. freebsd-update(8): -b basedir
// operates on a system mounted there; --currently-running tells it the
// release instead of asking the host's kernel (the host may run another
// one); --not-running-from-cron lets fetch run without a terminal, which
// it refuses otherwise; PAGER=/bin/cat keeps it from waiting in a pager.
// `fetch install` exits non-zero with "No updates are available to
// install." when there is nothing to do (seen in iocage and freebsd-src
// reports); that is success.
func freebsdUpdate(h *hostSteps, dir, version string) error {
	h.note("patch %s with freebsd-update (downloads the patches: minutes, not seconds)", dir)
	argv := []string{"env", "PAGER=/bin/cat", "freebsd-update", "--not-running-from-cron",
		"--currently-running", version, "-b", dir, "fetch", "install"}
	fmt.Fprintln(h.out, command.Quote(argv))
	if h.dry {
		return nil
	}
	out, err := h.r.Run(h.ctx, argv, nil)
	h.passOn(out)
	if err != nil && strings.Contains(string(out)+command.Stderr(err), "No updates are available to install.") {
		err = nil
	}
	return err
}

// fetchBase returns the path of a verified base.txz: the local File, or a
// download into Root/media through artifact.Download (kept, and reused
// while it matches the MANIFEST).
func fetchBase(h *hostSteps, cfg TemplateConfig) (string, error) {
	media := filepath.Join(cfg.Root, "media")
	var manifest, base string
	if cfg.File != "" {
		base = cfg.File
		manifest = filepath.Join(filepath.Dir(cfg.File), "MANIFEST")
		h.note("use %s, checked against %s", base, manifest)
	} else {
		manifest = filepath.Join(media, cfg.Version+"-MANIFEST")
		base = filepath.Join(media, cfg.Version+"-base.txz")
		h.note("download %sMANIFEST to %s", cfg.URL, manifest)
		if !h.dry {
			// No sum to check it against: it carries the sums.
			if err := artifact.Download(h.ctx, cfg.Client, cfg.URL+"MANIFEST", manifest, maxDownload, ""); err != nil {
				return "", err
			}
		}
	}
	var want string
	if !h.dry {
		f, err := os.Open(manifest)
		if err != nil {
			return "", err
		}
		want, err = ManifestSHA256(f, "base.txz")
		f.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", manifest, err)
		}
	}
	if cfg.File == "" {
		if !h.dry {
			if got, err := artifact.SHA256File(base); err == nil && got == want {
				h.note("%s is already there and matches the MANIFEST", base)
				return base, nil
			}
		}
		h.note("download %sbase.txz to %s", cfg.URL, base)
		if !h.dry {
			// base appears only once it matches the MANIFEST.
			p := newProgress(h.out, cfg.Now, cfg.Terminal, "download base.txz")
			var got int64
			err := artifact.DownloadProgress(h.ctx, cfg.Client, cfg.URL+"base.txz", base, maxDownload, want, func(done, total int64) {
				got = done
				p.update(done, total)
			})
			p.finish(got)
			if err != nil {
				return "", err
			}
			return base, nil
		}
	}
	h.note("verify: the sha256 of %s is the MANIFEST's for base.txz", base)
	if h.dry {
		return base, nil
	}
	return base, verify(base, want)
}

// unpack extracts base into dir: `tar -x -C dir --unlink -f -` with base
// on its standard input, so the bytes tar has read show how far it has
// got. bsdtar reads the archive from standard input for "-f -" and
// detects the xz compression itself (tar(1)); --unlink unlinks files
// before creating them, as the Handbook's jail chapter does.
func unpack(h *hostSteps, cfg TemplateConfig, dir, base string) error {
	argv := []string{"tar", "-x", "-C", dir, "--unlink", "-f", "-"}
	h.note("unpack %s into %s", base, dir)
	fmt.Fprintf(h.out, "%s < %s\n", command.Quote(argv), command.Quote([]string{base}))
	if h.dry {
		return nil
	}
	f, err := os.Open(base)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pr := &progressReader{r: f, total: st.Size(), p: newProgress(h.out, cfg.Now, cfg.Terminal, "unpack "+filepath.Base(base))}
	out, err := h.r.Run(h.ctx, argv, pr)
	pr.p.finish(pr.done)
	h.passOn(out)
	return err
}

func verify(path, want string) error {
	got, err := artifact.SHA256File(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: %s has sha256 %s, the MANIFEST says %s", artifact.ErrChecksum, path, got, want)
	}
	return nil
}
