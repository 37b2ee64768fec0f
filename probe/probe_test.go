package probe

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hb")
	now := time.Now()
	if ok, why := Check(path, time.Second, now); ok || !strings.Contains(why, "not running") {
		t.Errorf("no file: %v %q", ok, why)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, why := Check(path, time.Second, now); !ok {
		t.Errorf("fresh heartbeat: %q", why)
	}
	old := now.Add(-time.Minute)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if ok, why := Check(path, 30*time.Second, now); ok || !strings.Contains(why, "frozen") {
		t.Errorf("stale heartbeat: %v %q", ok, why)
	}
	// A pid that cannot exist: the runner is gone, whatever the file's age.
	if err := os.WriteFile(path, []byte("2147483646\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, why := Check(path, time.Hour, time.Now()); ok || !strings.Contains(why, "gone") {
		t.Errorf("gone runner: %v %q", ok, why)
	}
}

// Ensure the heartbeat is kept fresh while loops wait or move, however
// long they wait, stops once one loop is stuck in a step, comes back when
// it moves again, and is removed at the end.
func TestHeartbeat_StopsWhileALoopIsStuck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb")
	waiting, working, stuck := NewPulse("waiting"), NewPulse("working"), NewPulse("stuck")
	waiting.Busy()
	waiting.Waiting() // and never again busy: an idle loop, or one waiting on a backend
	hb := NewHeartbeat(path, 200*time.Millisecond, zerolog.Nop(), waiting, working, stuck)
	hb.stallAfter = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hb.Run(ctx) }()
	healthy := func() bool { ok, _ := Check(path, 200*time.Millisecond, time.Now()); return ok }
	deadline := time.Now().Add(10 * time.Second)
	step := func(p *Pulse) { p.Busy(); p.Waiting() }
	// Short steps, for well over stallAfter: healthy throughout.
	for range 20 {
		step(working)
		step(stuck)
		for !healthy() {
			if time.Now().After(deadline) {
				t.Fatal("never healthy while every loop moves")
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// One loop enters a step and never leaves it: the heartbeat goes stale.
	stuck.Busy()
	for healthy() {
		step(working)
		if time.Now().After(deadline) {
			t.Fatal("still healthy with a loop stuck in one step")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// It moves again: healthy again.
	stuck.Waiting()
	for !healthy() {
		if time.Now().After(deadline) {
			t.Fatal("not healthy again after the stuck loop moved")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("heartbeat left behind after a clean stop")
	}
}
