package crashpoint

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

var (
	testA = New("crashpoint.test.a")
	testB = New("crashpoint.test.b")
)

func TestPointsListsEveryPoint(t *testing.T) {
	got := Points()
	for _, want := range []string{testA.Name(), testB.Name()} {
		if !slices.Contains(got, want) {
			t.Errorf("Points() = %v, missing %s", got, want)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Points() = %v, not sorted", got)
	}
}

func TestNewRefusesADuplicate(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a second New of the same name did not panic")
		}
	}()
	New(testA.Name())
}

func TestArmOnlyTheNamedPoint(t *testing.T) {
	var hits []string
	disarm := Arm(testB.Name(), func(n string) { hits = append(hits, n) })
	testA.Hit()
	testB.Hit()
	testB.Hit()
	disarm()
	testB.Hit()
	if want := []string{testB.Name(), testB.Name()}; !slices.Equal(hits, want) {
		t.Errorf("actions ran for %v, want %v", hits, want)
	}
}

func TestDieUnwindsWithCrash(t *testing.T) {
	defer Arm(testA.Name(), Die)()
	var got any
	func() {
		defer func() { got = recover() }()
		testA.Hit()
		t.Error("Hit returned from an armed point")
	}()
	if got != (Crash{Point: testA.Name()}) {
		t.Errorf("recovered %v, want Crash{%s}", got, testA.Name())
	}
}

// TestEnvKillsTheProcess runs this test binary again with the variable
// set: the child dies of SIGKILL at the point, before it prints.
func TestEnvKillsTheProcess(t *testing.T) {
	if os.Getenv("CRASHPOINT_CHILD") == "1" {
		testA.Hit() // not armed: goes on
		testB.Hit()
		os.Stdout.WriteString("survived\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEnvKillsTheProcess$")
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", EnvVar+"="+testB.Name())
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: err %v, output %q; want a kill", err, out)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %v, want SIGKILL", ee)
	}
	if len(out) != 0 {
		t.Errorf("child printed %q after the point", out)
	}
}
