package release

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLimitsStoredForm(t *testing.T) {
	for _, l := range []Limits{
		{},
		{Memory: 512 << 20},
		{Memory: 512 << 20, PCPU: 50, MaxProc: 200, OpenFiles: 4096, Disk: 5 << 30},
		{PCPU: 1, Disk: 1 << 20},
	} {
		s := l.String()
		got, err := ParseLimits(s)
		if err != nil {
			t.Errorf("ParseLimits(%q): %v", s, err)
			continue
		}
		if diff := cmp.Diff(l, got); diff != "" {
			t.Errorf("ParseLimits(%q) (-want +got):\n%s", s, diff)
		}
	}
	if got := (Limits{Memory: 512 << 20, PCPU: 50, MaxProc: 200, OpenFiles: 4096, Disk: 5 << 30}).String(); got != "memory=536870912,pcpu=50,maxproc=200,openfiles=4096,disk=5368709120" {
		t.Errorf("String = %q", got)
	}
}

func TestParseLimitsRefuses(t *testing.T) {
	for _, s := range []string{"memory", "memory=0", "memory=-1", "memory=1G", "pcpu=1,pcpu=2", "cpu=5", "maxproc=99999999999", ",", "memory=1,"} {
		if l, err := ParseLimits(s); err == nil {
			t.Errorf("ParseLimits(%q) = %+v, want an error", s, l)
		}
	}
}
