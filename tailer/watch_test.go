package tailer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// inPoller reports whether fd is in one of this process's epoll sets (the
// runtime's poller), from /proc/self/fdinfo.
func inPoller(t *testing.T, fd int) bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range fds {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == "tfd:" && fields[1] == strconv.Itoa(fd) {
				return true
			}
		}
	}
	return false
}

// The change events' instance is read on demand; in the poller between
// demands, its first event after each read woke the poller's thread with
// no reader waiting. It must be there only while its reader waits, and
// still deliver every change and end when closed mid-wait.
func TestChangeEvents_InThePollerOnlyWhileTheReaderWaits(t *testing.T) {
	w, err := newWatches()
	if err != nil {
		t.Skipf("no inotify: %v", err)
	}
	dir := t.TempDir()
	if err := w.add(dir); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		w.change.run(done, nil)
		close(ended)
	}()
	defer func() {
		close(done)
		w.close()
		<-ended
		w.release()
	}()
	path := filepath.Join(dir, "app.log")
	take := func() notifyEvent {
		t.Helper()
		w.change.demand <- struct{}{}
		select {
		case ev := <-w.change.events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no change event within 10 s")
			return notifyEvent{}
		}
	}
	waiting := func() bool {
		w.change.mu.Lock()
		defer w.change.mu.Unlock()
		return w.change.waiting != nil
	}

	// An event queued before the demand is read without a wait.
	appendText(t, path, "1\n")
	if ev := take(); ev.name != "app.log" {
		t.Fatalf("event for %q, want app.log", ev.name)
	}
	if inPoller(t, w.change.fd) || waiting() {
		t.Fatal("the change instance is in the poller between demands")
	}

	// Demanded with none queued, the reader waits in the poller on a
	// duplicate, and the next change wakes it.
	w.change.demand <- struct{}{}
	waitFor(t, 10*time.Second, "the reader to wait for the next event", waiting)
	w.change.mu.Lock()
	dup := int(w.change.waiting.Fd())
	w.change.mu.Unlock()
	if !inPoller(t, dup) || inPoller(t, w.change.fd) {
		t.Fatalf("while waiting: duplicate %d in the poller %v, instance %d in it %v; want only the duplicate", dup, inPoller(t, dup), w.change.fd, inPoller(t, w.change.fd))
	}
	appendText(t, path, "2\n")
	select {
	case ev := <-w.change.events:
		if ev.name != "app.log" {
			t.Fatalf("event for %q, want app.log", ev.name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a change while the reader waited was not delivered")
	}
	waitFor(t, 10*time.Second, "the reader to stop waiting after its event", func() bool { return !waiting() })
	if inPoller(t, w.change.fd) {
		t.Fatal("the change instance is in the poller after the wait")
	}

	// Closed while the reader waits, the reader ends.
	w.change.demand <- struct{}{}
	waitFor(t, 10*time.Second, "the reader to wait for the next event", waiting)
	w.change.close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end when its instance was closed")
	}
}
