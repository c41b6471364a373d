package release

import (
	"testing"
	"time"
)

func TestDataSnapshotNames(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 5, 0, time.FixedZone("CET", 3600))
	snap := DataSnapshot("hello_4b825dc642cb_1a2b3c", at)
	if want := "hello_4b825dc642cb_1a2b3c-20261125T110005Z"; snap != want {
		t.Fatalf("DataSnapshot = %q, want %q (UTC)", snap, want)
	}
	for _, tc := range []struct {
		service, snap string
		want          bool
	}{
		{"hello", snap, true},
		{"hell", snap, false},                               // another service's release
		{"hello", "before-upgrade", false},                  // an operator's own
		{"hello", "hello_4b825dc642cb_1a2b3c", false},       // no time
		{"hello", "hello_4b825dc642cb_1a2b3c-today", false}, // not our time
		{"my_app", "my_app_4b825dc642cb_1a2b3c-20261125T110005Z", true},
	} {
		if got := IsDataSnapshot(tc.service, tc.snap); got != tc.want {
			t.Errorf("IsDataSnapshot(%q, %q) = %v, want %v", tc.service, tc.snap, got, tc.want)
		}
	}
	if DataEnv("uploads") != "DATA_UPLOADS" {
		t.Errorf("DataEnv(uploads) = %s", DataEnv("uploads"))
	}
}
