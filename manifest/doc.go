// Package manifest is the schema of a deploy repo: one YAML file per service
// (DESIGN.md "Manifest v1"). It decodes strictly (unknown fields are errors),
// applies defaults, validates, and hashes the part of a manifest that is
// installed into a release.
//
// The package does no I/O of its own: [Load] reads from an [fs.FS] that the
// caller provides (a git tree, os.DirFS), and [Decode] takes bytes. Every
// problem is reported as an [*Error] that names the file, the line where the
// YAML has one, the field as a dotted path (health.timeout, env.PORT,
// hostnames[1]) and what is wrong; all problems of a file or a directory come
// back at once as [Errors]. errors.Is(err, [ErrInvalid]) tells bad input from
// a failure to read.
package manifest
