package commandtest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
)

func TestReplaySequencesAndTranscript(t *testing.T) {
	var r commandtest.Replay
	jls := []string{"jls", "-j", "web"}
	r.On(jls, commandtest.Fail(1, `jls: jail "web" not found`+"\n"), commandtest.OK(""))
	r.OnPrefix([]string{"zfs"}, commandtest.OK("prefix\n"))
	r.OnPrefix([]string{"zfs", "get"}, commandtest.OK("longer\n"))
	r.On([]string{"zfs", "get", "exact"}, commandtest.OK("exact\n"))
	ctx := context.Background()

	_, err := r.Run(ctx, jls, nil)
	if code, ok := command.ExitCode(err); !ok || code != 1 || !strings.Contains(command.Stderr(err), "not found") {
		t.Fatalf("first jls: %v", err)
	}
	for range 2 { // the last response repeats
		if _, err := r.Run(ctx, jls, nil); err != nil {
			t.Fatalf("later jls: %v", err)
		}
	}
	for argv, want := range map[string]string{
		"zfs list":      "prefix\n",
		"zfs get x":     "longer\n",
		"zfs get exact": "exact\n",
		"ifconfig lo1":  "",
	} {
		out, err := r.Run(ctx, strings.Fields(argv), strings.NewReader("ignored"))
		if err != nil || string(out) != want {
			t.Errorf("%s: %q, %v; want %q", argv, out, err, want)
		}
	}
	got := r.Transcript()
	want := "jls -j web  # exit 1\njls -j web\njls -j web\n"
	if !strings.HasPrefix(got, want) {
		t.Errorf("transcript:\n%s\nwant prefix:\n%s", got, want)
	}
	if n := len(r.Calls()); n != 7 {
		t.Errorf("%d calls recorded, want 7", n)
	}
	r.Reset()
	if r.Transcript() != "" {
		t.Error("Reset kept calls")
	}
}

func TestReplayContextAndConcurrency(t *testing.T) {
	var r commandtest.Replay
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx, []string{"true"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { _, _ = r.Run(context.Background(), []string{"x"}, nil) })
	}
	wg.Wait()
	if n := len(r.Calls()); n != 9 {
		t.Errorf("%d calls, want 9", n)
	}
}
