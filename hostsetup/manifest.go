package hostsetup

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/jailkeeper/jailkeeper/jails"
)

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ManifestSHA256 returns the sha256 of file from a release MANIFEST:
// TAB-separated lines of file name, sha256, number of archive entries,
// dist name, quoted description and on/off (release/scripts/make-manifest.sh,
// FACTS §5).
func ManifestSHA256(r io.Reader, file string) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 2 || f[0] != file {
			continue
		}
		if len(f) != 6 || !sha256RE.MatchString(f[1]) {
			return "", fmt.Errorf("%w: MANIFEST line for %s: want 6 TAB-separated fields with a sha256, got %q", jails.ErrParse, file, sc.Text())
		}
		return f[1], nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%w: MANIFEST has no line for %s", jails.ErrParse, file)
}
