package manifest

import (
	"cmp"
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
// retain, hosts, standby, canary and migrate_timeout are not in it: they
// change how a release is routed and handled, not what is installed.
//
// Fields added later (the template snapshot, data, limits, migrate) are
// left out when absent or at their default, so a manifest that does not
// use them keeps the hash, and the release name, it had before they
// existed: upgrading jailkeeper renames no release. Add new fields the same
// way. Changing how an existing field encodes changes every release name;
// bump specVersion when you do.
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
	// TemplateSnapshot is the pinned snapshot, left out for none and for
	// DefaultTemplateSnapshot, which releases were cloned from before
	// pins existed.
	TemplateSnapshot string           `json:"template_snapshot,omitempty"`
	Data             []canonicalData  `json:"data,omitempty"`
	Limits           *canonicalLimits `json:"limits,omitempty"`
	Migrate          []string         `json:"migrate,omitempty"`
}

// canonicalData is one data set; sizes are in bytes, so 10G and 10240M
// hash alike.
type canonicalData struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	Quota int64  `json:"quota,omitempty"`
}

// canonicalLimits are the limits that are set, sizes in bytes.
type canonicalLimits struct {
	Memory    int64 `json:"memory,omitempty"`
	PCPU      int   `json:"pcpu,omitempty"`
	MaxProc   int   `json:"maxproc,omitempty"`
	OpenFiles int   `json:"openfiles,omitempty"`
	Disk      int64 `json:"disk,omitempty"`
}

const specVersion = 1

// SpecHash returns the hex sha256 of the canonical encoding of what is
// installed into a release: sha, artifact url and sha256, port, command,
// env, EnvFileDigest, user, template and its pinned snapshot (unless
// "base"), allow (order-insensitive), data (order-insensitive, quotas in
// bytes), limits (in bytes) and migrate. It does not depend on how the
// YAML was written (key order, comments, quoting, whitespace, units), and
// not on hostnames, health, drain, retain, hosts, standby, canary or
// migrate_timeout. An empty data list or limits block hashes as none. A
// Service whose manifest has env_file hashes differently once the agent has
// set EnvFileDigest.
func (s *Service) SpecHash() string {
	return specHashes.hash(s)
}

// specHash is SpecHash without the memo.
func (s *Service) specHash() string {
	allow := slices.Clone(s.Allow)
	slices.Sort(allow)
	env := s.Env
	if len(env) == 0 {
		env = nil
	}
	snap := s.TemplateSnapshot
	if snap == DefaultTemplateSnapshot {
		snap = ""
	}
	var data []canonicalData
	for _, d := range s.Data {
		data = append(data, canonicalData(d))
	}
	slices.SortFunc(data, func(a, b canonicalData) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Path, b.Path))
	})
	var limits *canonicalLimits
	if l := s.Limits; !l.IsZero() {
		c := canonicalLimits(l)
		limits = &c
	}
	migrate := s.Migrate
	if len(migrate) == 0 {
		migrate = nil
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

		TemplateSnapshot: snap,
		Data:             data,
		Limits:           limits,
		Migrate:          migrate,
	})
	if err != nil { // only strings, ints, slices and maps of them: cannot happen
		panic(fmt.Sprintf("manifest: encode spec: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ReleaseName returns <service>_<sha[:12]>_<SpecHash[:6]>, the name of the
// release (dataset, jail, directory) built from this spec. For a valid
// Service it satisfies release.ValidName.
func (s *Service) ReleaseName() string {
	return s.releaseName(s.SpecHash())
}

// SpecAndName returns SpecHash and ReleaseName from one hash of the spec:
// a caller that needs both hashes once (an idle pass asks for them for
// every service, issue 11).
func (s *Service) SpecAndName() (spec, name string) {
	spec = s.SpecHash()
	return spec, s.releaseName(spec)
}

func (s *Service) releaseName(spec string) string {
	sha := s.SHA
	if len(sha) > 12 {
		sha = sha[:12]
	}
	return s.Service + "_" + sha + "_" + spec[:6]
}

// ForHost reports whether the agent named host deploys this service: hosts
// is empty (every host) or lists host, compared case-insensitively.
func (s *Service) ForHost(host string) bool {
	if len(s.Hosts) == 0 {
		return true
	}
	return slices.ContainsFunc(s.Hosts, func(h string) bool { return strings.EqualFold(h, host) })
}
