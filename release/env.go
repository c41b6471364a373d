package release

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// envKeyRE: a shell identifier.
var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// loaderPrefix starts the variables the dynamic loader reads (LD_PRELOAD,
// LD_LIBRARY_PATH, ...: ld.so(8) on Linux, rtld(1) on FreeBSD): one of them
// would change how every program of the release is loaded.
const loaderPrefix = "LD_"

// ValidEnvKey checks a variable name of a Spec's Env: a shell identifier
// that is not a loader variable (LD_*). Every runtime checks Env with it
// before creating anything.
func ValidEnvKey(k string) error {
	if !envKeyRE.MatchString(k) {
		return fmt.Errorf("invalid variable name %q", k)
	}
	if strings.HasPrefix(k, loaderPrefix) {
		return fmt.Errorf("variable %s: LD_* variables are not allowed: they change how every program is loaded", k)
	}
	return nil
}

// ParseEnvFile reads an env file (a Spec's EnvFile) and returns its
// KEY=VALUE lines in order: one per line, the value taken literally up to
// the end of the line (no quotes, no expansion); blank lines and lines
// starting with # are skipped; "export " before KEY is allowed; a trailing
// CR is dropped. Variable names follow ValidEnvKey; a NUL in a value is
// refused. Errors name the line number, and the variable name only when it
// is a valid one, never a value: values are secrets.
func ParseEnvFile(b []byte) ([]string, error) {
	var out []string
	for i, line := range bytes.Split(b, []byte("\n")) {
		s := strings.TrimSuffix(string(line), "\r")
		t := strings.TrimSpace(s)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		t = strings.TrimPrefix(strings.TrimLeft(s, " \t"), "export ")
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY=VALUE", i+1)
		}
		k = strings.TrimSpace(k)
		if !envKeyRE.MatchString(k) {
			return nil, fmt.Errorf("line %d: invalid variable name", i+1)
		}
		if strings.HasPrefix(k, loaderPrefix) {
			return nil, fmt.Errorf("line %d: variable %s: LD_* variables are not allowed: they change how every program is loaded", i+1, k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("line %d: NUL in value", i+1)
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}
