package manifest

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSpecKeyCoversSpecHash: changing any field of a Service, down to
// the fields of artifact, data and limits, either changes the memo's key
// or leaves the spec hash alone (the fields the hash leaves out). A field
// added to Service and to specHash but not to specKey fails here; so does
// a new field of Service until this test knows whether it is hashed.
func TestSpecKeyCoversSpecHash(t *testing.T) {
	standby := time.Minute
	mk := func() Service {
		return Service{Service: "hello", SHA: "a", Artifact: Artifact{URL: "u", SHA256: "s"}, Hostnames: []string{"h"}, Port: 1,
			Command: []string{"c"}, Env: map[string]string{"K": "v"}, EnvFile: "e.env", User: "www",
			Health: Health{Path: "/up"}, Drain: time.Second, Retain: 2, Hosts: []string{"web1"}, Template: "t", TemplateSnapshot: "snap",
			Allow: []string{"raw_sockets"}, Data: []Data{{Name: "d", Path: "/p", Quota: 1}},
			Limits: Limits{Memory: 1, PCPU: 1, MaxProc: 1, OpenFiles: 1, Disk: 1}, Standby: &standby, Canary: &Canary{},
			Migrate: []string{"m"}, MigrateTimeout: time.Minute, File: "hello.yaml", EnvFileDigest: "d"}
	}
	// Not in the spec hash (see canonicalSpec).
	unhashed := map[string]bool{"Service": true, "Hostnames": true, "EnvFile": true, "Health": true, "Drain": true, "Retain": true,
		"Hosts": true, "Standby": true, "Canary": true, "MigrateTimeout": true, "File": true}
	base := mk()
	baseKey, baseHash := string(base.specKey(nil)), base.specHash()
	// leaves returns a function per leaf value under v that changes it.
	var leaves func(path string, v reflect.Value) map[string]func()
	leaves = func(path string, v reflect.Value) map[string]func() {
		out := map[string]func(){}
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				for p, f := range leaves(path+"."+v.Type().Field(i).Name, v.Field(i)) {
					out[p] = f
				}
			}
		case reflect.Pointer:
			if !v.IsNil() {
				out[path] = func() { v.Set(reflect.Zero(v.Type())) }
			}
		case reflect.String:
			out[path] = func() { v.SetString(v.String() + "x") }
		case reflect.Int, reflect.Int64:
			out[path] = func() { v.SetInt(v.Int() + 1) }
		case reflect.Slice:
			out[path] = func() { v.Set(reflect.Zero(v.Type())) }
			if v.Len() > 0 {
				for p, f := range leaves(path+"[0]", v.Index(0)) {
					out[p] = f
				}
			}
		case reflect.Map:
			out[path] = func() { v.SetMapIndex(reflect.ValueOf("X"), reflect.ValueOf("y")) }
		default:
			t.Fatalf("%s: kind %s: teach this test about it", path, v.Kind())
		}
		return out
	}
	n := 0
	for path := range leaves("", reflect.ValueOf(&base).Elem()) {
		s := mk()
		leaves("", reflect.ValueOf(&s).Elem())[path]()
		top := strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == '[' })[0] // the Service field
		hash, key := s.specHash(), string(s.specKey(nil))
		switch {
		case unhashed[top] && hash != baseHash:
			t.Errorf("%s: listed as not hashed, but it changes the spec hash", path)
		case !unhashed[top] && hash == baseHash:
			t.Errorf("%s: the test's change does not change the spec hash; list it as not hashed?", path)
		case hash != baseHash && key == baseKey:
			t.Errorf("%s: changes the spec hash and not the memo key", path)
		}
		n++
	}
	if n < 20 {
		t.Fatalf("only %d fields tried", n)
	}
}

// SpecHash answers from the memo what specHash computes.
func TestSpecHashMemo(t *testing.T) {
	a := Service{Service: "hello", SHA: "4b825dc642cb6eb9a060e54bf8d69288fbee4904", Port: 8080, Command: []string{"/usr/local/bin/hello"},
		Env: map[string]string{"A": "1"}, User: "www"}
	b := a
	b.Env = map[string]string{"A": "2"}
	for range 2 {
		for _, s := range []Service{a, b} {
			if got, want := s.SpecHash(), s.specHash(); got != want {
				t.Errorf("SpecHash of env %v = %s, want %s", s.Env, got, want)
			}
		}
	}
}

func BenchmarkSpecHash(b *testing.B) {
	s := Service{Service: "hello", SHA: "4b825dc642cb6eb9a060e54bf8d69288fbee4904", Port: 8080, Command: []string{"/usr/local/bin/hello"},
		Artifact: Artifact{URL: "https://ci.example.com/hello/4b825dc6/hello.tar.gz", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		Env:      map[string]string{"GREETING": "hi", "GEN": "b", "MODE": "bench"}, User: "www"}
	b.Run("memo", func(b *testing.B) {
		for b.Loop() {
			s.SpecHash()
		}
	})
	b.Run("none", func(b *testing.B) {
		for b.Loop() {
			s.specHash()
		}
	})
}
