package jails

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

var processEnvKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func processCheckEnvKey(k string) error {
	if !processEnvKeyRE.MatchString(k) {
		return fmt.Errorf("invalid variable name %q", k)
	}
	return nil
}

// processParseEnv reads an env file: one KEY=VALUE per line, the value
// taken literally up to the end of the line (no quotes, no expansion); blank
// lines and lines starting with # are skipped; "export " before KEY is
// allowed. Errors name the line number, never its content: values are
// secrets.
func processParseEnv(b []byte) ([]string, error) {
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
		if !processEnvKeyRE.MatchString(k) {
			return nil, fmt.Errorf("line %d: invalid variable name", i+1)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("line %d: NUL in value", i+1)
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}
