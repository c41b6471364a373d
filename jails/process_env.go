package jails

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

var processEnvKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// processLoaderPrefix starts the variables the dynamic loader reads
// (LD_PRELOAD, LD_LIBRARY_PATH, ...: ld.so(8) on Linux, rtld(1) on FreeBSD):
// one of them would change how every program of the release is loaded.
const processLoaderPrefix = "LD_"

// processCheckEnvKey checks a variable name of the manifest's env: a shell
// identifier that is not a loader variable.
func processCheckEnvKey(k string) error {
	if !processEnvKeyRE.MatchString(k) {
		return fmt.Errorf("invalid variable name %q", k)
	}
	if strings.HasPrefix(k, processLoaderPrefix) {
		return fmt.Errorf("variable %s: LD_* variables are not allowed: they change how every program is loaded", k)
	}
	return nil
}

// processParseEnv reads an env file: one KEY=VALUE per line, the value
// taken literally up to the end of the line (no quotes, no expansion); blank
// lines and lines starting with # are skipped; "export " before KEY is
// allowed. Variable names must be shell identifiers and not loader
// variables (LD_*). Errors name the line number, and the variable name only
// when it is a valid one, never a value: values are secrets.
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
		if strings.HasPrefix(k, processLoaderPrefix) {
			return nil, fmt.Errorf("line %d: variable %s: LD_* variables are not allowed: they change how every program is loaded", i+1, k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("line %d: NUL in value", i+1)
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}
