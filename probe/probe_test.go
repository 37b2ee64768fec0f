package probe

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
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
// it moves again, and is removed at the end. synctest's clock drives the
// ticker and the file's times alike, so each state is checked at an exact
// moment instead of polled for.
func TestHeartbeat_StopsWhileALoopIsStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxAge, stallAfter = 200 * time.Millisecond, 300 * time.Millisecond
		path := filepath.Join(t.TempDir(), "hb")
		waiting, working, stuck := NewPulse("waiting"), NewPulse("working"), NewPulse("stuck")
		waiting.Busy()
		waiting.Waiting() // and never again busy: an idle loop, or one waiting on a backend
		hb := NewHeartbeat(path, maxAge, zerolog.Nop(), waiting, working, stuck)
		hb.stallAfter = stallAfter
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- hb.Run(ctx) }()
		healthy := func() bool {
			synctest.Wait() // every beat due by now has been written
			ok, _ := Check(path, maxAge, time.Now())
			return ok
		}
		step := func(p *Pulse) { p.Busy(); p.Waiting() }
		// Short steps, for four times stallAfter: healthy throughout.
		for i := range 60 {
			step(working)
			step(stuck)
			time.Sleep(20 * time.Millisecond)
			if !healthy() {
				t.Fatalf("unhealthy after %d short steps", i+1)
			}
		}
		// One loop enters a step and never leaves it: once it has been busy
		// for stallAfter and the last beat is maxAge old, the probe fails.
		stuck.Busy()
		for range (stallAfter + maxAge + 100*time.Millisecond) / (20 * time.Millisecond) {
			step(working)
			time.Sleep(20 * time.Millisecond)
		}
		if healthy() {
			t.Fatal("still healthy with a loop stuck in one step")
		}
		// It moves again: the next beat makes it healthy again.
		stuck.Waiting()
		time.Sleep(60 * time.Millisecond)
		if !healthy() {
			t.Fatal("not healthy again after the stuck loop moved")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Error("heartbeat left behind after a clean stop")
		}
	})
}
