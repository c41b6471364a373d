package process

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestProcessParseStat(t *testing.T) {
	// proc(5): comm may contain spaces and parentheses.
	line := "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	id, alive, err := parseStat([]byte(line))
	if err != nil || id != "987654" || !alive {
		t.Errorf("parseStat = %q, %v, %v; want 987654, true", id, alive, err)
	}
	zombie := strings.Replace(line, ") S ", ") Z ", 1)
	if _, alive, _ := parseStat([]byte(zombie)); alive {
		t.Error("a zombie counts as alive")
	}
	if _, _, err := parseStat([]byte("4242 (short) S 1")); err == nil {
		t.Error("a short line parsed")
	}
	// The real thing: this test's own process.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(os.Getpid()) + "/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	id, alive, err = parseStat(b)
	if err != nil || !alive || id == "" {
		t.Errorf("own stat: %q, %v, %v", id, alive, err)
	}
}
