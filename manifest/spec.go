package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// canonicalSpec is what a release is built from. Its JSON encoding (struct
// fields in this order, map keys sorted by encoding/json, empty values left
// out) is the canonical form that SpecHash hashes. Hostnames, health, drain,
// retain and hosts are not in it: they change how a release is routed and
// handled, not what is installed. Changing this struct changes every
// release name; bump specVersion when you do.
type canonicalSpec struct {
	Version       int               `json:"v"`
	SHA           string            `json:"sha"`
	URL           string            `json:"artifact_url"`
	SHA256        string            `json:"artifact_sha256"`
	Port          int               `json:"port"`
	Command       []string          `json:"command"`
	Env           map[string]string `json:"env,omitempty"`
	EnvFileDigest string            `json:"env_file_sha256,omitempty"`
	User          string            `json:"user"`
	Template      string            `json:"template,omitempty"`
	Allow         []string          `json:"allow,omitempty"`
}

const specVersion = 1

// SpecHash returns the hex sha256 of the canonical encoding of what is
// installed into a release: sha, artifact url and sha256, port, command,
// env, EnvFileDigest, user, template and allow (order-insensitive). It does
// not depend on how the YAML was written (key order, comments, quoting,
// whitespace), and not on hostnames, health, drain, retain or hosts. A
// Service whose manifest has env_file hashes differently once the agent has
// set EnvFileDigest.
func (s *Service) SpecHash() string {
	allow := slices.Clone(s.Allow)
	slices.Sort(allow)
	env := s.Env
	if len(env) == 0 {
		env = nil
	}
	b, err := json.Marshal(canonicalSpec{
		Version:       specVersion,
		SHA:           s.SHA,
		URL:           s.Artifact.URL,
		SHA256:        s.Artifact.SHA256,
		Port:          s.Port,
		Command:       s.Command,
		Env:           env,
		EnvFileDigest: s.EnvFileDigest,
		User:          s.User,
		Template:      s.Template,
		Allow:         allow,
	})
	if err != nil { // only strings, ints and maps of strings: cannot happen
		panic(fmt.Sprintf("manifest: encode spec: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ReleaseName returns <service>_<sha[:12]>_<SpecHash[:6]>, the name of the
// release (dataset, jail, directory) built from this spec. For a valid
// Service it satisfies release.ValidName.
func (s *Service) ReleaseName() string {
	sha := s.SHA
	if len(sha) > 12 {
		sha = sha[:12]
	}
	return s.Service + "_" + sha + "_" + s.SpecHash()[:6]
}

// ForHost reports whether the agent named host deploys this service: hosts
// is empty (every host) or lists host, compared case-insensitively.
func (s *Service) ForHost(host string) bool {
	if len(s.Hosts) == 0 {
		return true
	}
	return slices.ContainsFunc(s.Hosts, func(h string) bool { return strings.EqualFold(h, host) })
}
