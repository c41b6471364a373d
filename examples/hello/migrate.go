package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// migrate is `hello migrate`, the demo's migration (a manifest's
// migrate: [/usr/local/bin/hello, migrate]). It prints what it runs with,
// then appends one line "VERSION ADDR" to the file HELLO_MIGRATE_LOG names
// (none: nothing to migrate), so a test can count the migrations that
// ran. Switches for the failure tests:
//
//	HELLO_MIGRATE_SLEEP=<duration>  waits that long first
//	HELLO_MIGRATE_FAIL=1            prints a few lines, appends nothing and exits 3
//
// It returns the exit status.
func migrate(getenv func(string) string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "hello %s migrating on %s\n", version, getenv("ADDR"))
	if wd, err := os.Getwd(); err == nil {
		fmt.Fprintf(stdout, "working directory %s\n", wd)
	}
	if v := getenv("HELLO_MIGRATE_SLEEP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(stderr, "hello: HELLO_MIGRATE_SLEEP=%q: %v\n", v, err)
			return 2
		}
		time.Sleep(d)
	}
	if getenv("HELLO_MIGRATE_FAIL") != "" {
		for i := 1; i <= 6; i++ {
			fmt.Fprintf(stdout, "step %d of 6\n", i)
		}
		fmt.Fprintln(stderr, "hello: migration failed on purpose")
		return 3
	}
	path := getenv("HELLO_MIGRATE_LOG")
	if path == "" {
		fmt.Fprintln(stdout, "nothing to migrate")
		return 0
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(stderr, "hello:", err)
		return 1
	}
	_, err = fmt.Fprintf(f, "%s %s\n", version, getenv("ADDR"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "hello:", err)
		return 1
	}
	fmt.Fprintln(stdout, "migrated")
	return 0
}
