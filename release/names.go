package release

import (
	"fmt"
	"regexp"
	"strings"
)

// Name rules. Names reach argv, file paths and ZFS dataset names, so every
// package checks them with these functions before use, and each rule is
// defined here only.
var (
	// serviceRE: a lowercase letter, then up to 31 lowercase letters,
	// digits or '_'. No dot, so Caddy IDs built from it cannot collide.
	serviceRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}_[0-9a-f]{12}_[0-9a-f]{6}$`)
	// templateRE: it becomes a ZFS dataset name component and a directory
	// name; ':' is left out so NAME@SNAPSHOT stays unambiguous.
	templateRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// datasetRE is what a ZFS file system name may be ("Naming ZFS
	// Components" in the Oracle Solaris ZFS guide, which OpenZFS follows):
	// components of alphanumerics, '_', '-', ':' and '.', none empty; the
	// pool name first, starting with a letter and without ':'. The blank
	// ZFS also takes is left out: names reach argv and messages.
	datasetRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*(/[A-Za-z0-9_.:-]+)*$`)
)

// ServicePattern is the service name rule as text, for messages.
var ServicePattern = serviceRE.String()

// TemplatePattern is the template name rule as text, for messages.
var TemplatePattern = templateRE.String()

// MaxDataset is ZFS_MAX_DATASET_NAME_LEN (256, with the NUL) minus one.
const MaxDataset = 255

// MaxName is the length of the longest release name: a 32-character
// service, _<sha12>_<spec6>.
const MaxName = 32 + 1 + 12 + 1 + 6

// Name returns the release name <service>_<sha[:12]>_<spec[:6]> for a
// service, an app commit of at least 12 hex digits and a spec hash of at
// least 6.
func Name(service, sha, spec string) string {
	return service + "_" + sha[:12] + "_" + spec[:6]
}

// ValidName reports whether name has the form <service>_<sha12>_<spec6>.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid release name %q", name)
	}
	return nil
}

// ServiceOf returns the service part of a valid release name.
func ServiceOf(name string) string {
	return name[:len(name)-len("_000000000000_000000")]
}

// ValidService reports whether name may name a service.
func ValidService(name string) error {
	if !serviceRE.MatchString(name) {
		return fmt.Errorf("invalid service name %q", name)
	}
	return nil
}

// ValidTemplate reports whether name may name a template: letters and
// digits first, then letters, digits, '.', '_' and '-', at most 64.
func ValidTemplate(name string) error {
	if !templateRE.MatchString(name) {
		return fmt.Errorf("%q is not a template name", name)
	}
	return nil
}

// TemplateDataset is the dataset of template t below dataset, the parent
// of jailkeeper's datasets: <dataset>/templates/<t>. Runtimes clone its
// snapshots; template create makes it.
func TemplateDataset(dataset, t string) string { return dataset + "/templates/" + t }

// ValidDataset reports whether name looks like a ZFS file system name
// (pool/a/b): no snapshot, no leading or trailing slash, no empty
// component, at most 255 bytes. It runs nothing.
func ValidDataset(name string) error {
	if len(name) > MaxDataset || !datasetRE.MatchString(name) {
		return fmt.Errorf("%q is not a ZFS dataset name", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == "." || c == ".." { // OpenZFS's namecheck refuses them too
			return fmt.Errorf("%q is not a ZFS dataset name", name)
		}
	}
	return nil
}
