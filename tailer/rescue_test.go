package tailer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rescueOf returns the rescue of the file at path, if it has one.
func rescueOf(f *Follower, path string) *rescue {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	id, _ := idOf(fi)
	f.guards.mu.Lock()
	defer f.guards.mu.Unlock()
	if gd := f.guards.byID[id]; gd != nil {
		return gd.rescue
	}
	return nil
}

// rescueRead reports how far the rescue of the file at path has read, and
// whether there is one.
func rescueRead(f *Follower, path string) (int64, bool) {
	if r := rescueOf(f, path); r != nil {
		return r.read.Load(), true
	}
	return 0, false
}

// stuckWithRescue follows app.log, delivers lines 1..100, then holds the
// sink so that the follow loop is stuck handing over line 101, and opens
// the file as a copier would. It returns once a rescue watches the file,
// with the writer and the sink's release.
func stuckWithRescue(t *testing.T) (r *running, path string, w *os.File, release func()) {
	return stuckWithRescueOf(t, rescueSetup{pattern: "app.log", backlogTo: 101, readsBacklog: true})
}

// rescueSetup varies stuckWithRescue: the pattern followed ("app.log*"
// follows the copies too), the last line written before the copier's
// open (lines 102..backlogTo are the loop's backlog), and whether the
// rescue reads that backlog (false leaves it to the copy, as a
// truncation that comes first does).
type rescueSetup struct {
	pattern      string
	backlogTo    int
	readsBacklog bool
	// also, when set, is a second pattern, in a directory of its own
	// (the copies' olddir); rescueFor is CopyPoll, a minute when 0.
	also      string
	rescueFor time.Duration
	// spin is how long the rescue reads without sleeping; 0 keeps
	// spinBase, a negative value makes it sleep at once.
	spin time.Duration
	// beforeRead, when set, runs in the rescue before each of its reads.
	beforeRead func()
}

func stuckWithRescueOf(t *testing.T, setup rescueSetup) (r *running, path string, w *os.File, release func()) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "app.log")
	w = openAppend(t, path)
	patterns := []string{setup.pattern}
	if setup.also != "" {
		patterns = append(patterns, setup.also)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, setup.also)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, dir, patterns...)
	cfg.Settle = 20 * time.Millisecond
	cfg.CopyPoll = time.Minute // the rescue outlasts any slowness of the test
	if setup.rescueFor > 0 {
		cfg.CopyPoll = setup.rescueFor
	}
	r = startFollower(t, cfg)
	r.f.guards.mu.Lock()
	if !setup.readsBacklog {
		r.f.guards.backlogPiece = 0
	}
	if setup.spin != 0 {
		r.f.guards.spin = max(setup.spin, 0)
	}
	r.f.guards.beforeRescueRead = setup.beforeRead
	r.f.guards.mu.Unlock()
	writeLines(t, w, 1, 100)
	waitCount(t, r, 100)
	release = r.c.hold()
	t.Cleanup(release)
	writeLines(t, w, 101, 101)
	waitFor(t, 10*time.Second, "the loop to be stuck handing over line 101", r.c.stuck.Load)
	writeLines(t, w, 102, setup.backlogTo)
	// Past ownOpenGrace, so that the open below is not taken for the
	// follower's own.
	waitFor(t, 10*time.Second, "the follower's own open to be old", func() bool {
		r.f.guards.mu.Lock()
		defer r.f.guards.mu.Unlock()
		for _, gd := range r.f.guards.byID {
			return time.Since(gd.added) > ownOpenGrace
		}
		return false
	})
	copier, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	copier.Close()
	waitFor(t, 10*time.Second, "a rescue", func() bool { _, ok := rescueRead(r.f, path); return ok })
	return r, path, w, release
}

// requireNewestFirst fails unless the rescue of the file at path starts
// past the loop's offset.
func requireNewestFirst(t *testing.T, r *running, path string) *rescue {
	t.Helper()
	rescue := rescueOf(r.f, path)
	if rescue.tailFrom <= rescue.from {
		t.Fatalf("the rescue starts at %d, the loop's offset %d; want the newest lines first", rescue.tailFrom, rescue.from)
	}
	return rescue
}

// waitRescued waits until the rescue of the file at path has read it to
// its size now (and, with also, until also holds).
func waitRescued(t *testing.T, r *running, path string, also func() bool) {
	t.Helper()
	written := fileSize(t, path)
	waitFor(t, 10*time.Second, "the rescue to read the file to its end", func() bool {
		read, _ := rescueRead(r.f, path)
		return read >= written && (also == nil || also())
	})
}

// truncateAndFinish truncates the file at path as a copier would once its
// copy is made, writes lines from..to after it, lets the loop go on, and
// requires lines 1..to exactly once.
func truncateAndFinish(t *testing.T, r *running, path string, w *os.File, release func(), from, to int) {
	t.Helper()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, from, to)
	release()
	waitCount(t, r, to)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), to)
}

// writeEachRescued writes lines from..to one at a time, each read by the
// rescue of the file at path before the next; after each, between (if
// set) runs.
func writeEachRescued(t *testing.T, r *running, path string, w *os.File, from, to int, between func()) {
	t.Helper()
	for n := from; n <= to; n++ {
		writeLines(t, w, n, n)
		written := fileSize(t, path)
		waitFor(t, 10*time.Second, "the rescue to read the line", func() bool {
			read, _ := rescueRead(r.f, path)
			return read >= written
		})
		if between != nil {
			between()
		}
	}
}

// Ensure the lines written between a copier's open and its truncation are
// delivered even when the follow loop cannot read them in time: here the
// sink holds it for the whole copytruncate. The events' reader starts a
// rescue at the copier's open, and the loop frames what it kept when it
// finds the truncation. Every line once; lines 102..200 exist nowhere
// but in the rescue's memory.
func TestRescue_KeepsWhatTheTruncationWipes(t *testing.T) {
	r, path, w, release := stuckWithRescue(t)
	writeLines(t, w, 102, 200)
	waitRescued(t, r, path, nil)
	truncateAndFinish(t, r, path, w, release, 201, 250)
}

// Ensure a rescue behind a backlog reads the newest lines first, and that
// the backlog the truncation comes before is read from the copy: lines
// 102..1000 wait for the stuck loop when the copier opens the file, and
// here the rescue reads none of them (as when the truncation comes
// first). The copy goes to another directory (logrotate's olddir), which
// a second pattern follows: it resumes at the backlog, skips the lines
// the rescue handed over, and its checkpoint ends past them, so that a
// restart does not send them again. Every line once.
func TestRescue_NewestFirstAndTheBacklogFromTheCopy(t *testing.T) {
	r, path, w, release := stuckWithRescueOf(t, rescueSetup{pattern: "app.log", also: "old/*", backlogTo: 1000})
	requireNewestFirst(t, r, path)
	writeLines(t, w, 1001, 1100)
	waitRescued(t, r, path, nil)
	copyPath := filepath.Join(filepath.Dir(path), "old", "app.log.1")
	copied := copyTruncateTo(t, path, copyPath)
	writeLines(t, w, 1101, 1150)
	release()
	waitCount(t, r, 1150)
	waitFor(t, 10*time.Second, "the copy's checkpoint to reach its end", func() bool {
		for _, e := range r.f.cfg.Positions.snapshot() {
			if e.path == copyPath {
				return e.offset == copied
			}
		}
		return false
	})
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 1150)
}

// Ensure the lines no read reached before a truncation are read from the
// copy next to the file even when the patterns do not follow it (app.log,
// copied to app.log.1): here the rescue ends at once and keeps nothing,
// as one that starts after the truncation does, and lines 102..1000 exist
// only in the copy when the loop finds the truncation. With the copy
// followed too (app.log*), nothing is read twice.
func TestRescue_TooLateReadsTheCopy(t *testing.T) {
	for _, pattern := range []string{"app.log", "app.log*"} {
		t.Run(pattern, func(t *testing.T) {
			r, path, w, release := stuckWithRescueOf(t, rescueSetup{pattern: pattern, backlogTo: 1000, rescueFor: time.Nanosecond})
			copied := copyTruncateTo(t, path, path+".1")
			// A newer, larger file beside it that is not the copy.
			decoy := bytes.Repeat([]byte("not a copy\n"), int(copied)/10)
			other := filepath.Join(filepath.Dir(path), "other.txt")
			if err := os.WriteFile(other, decoy, 0o644); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Second) // file times are coarser than this test
			if err := os.Chtimes(other, later, later); err != nil {
				t.Fatal(err)
			}
			writeLines(t, w, 1001, 1050)
			release()
			waitCount(t, r, 1050)
			r.stop(t)
			requireExactlyOnce(t, r.c.texts(), 1050)
		})
	}
}

// Ensure a rescue behind a backlog reads it between writes, and frames
// it before the newest lines when the truncation comes: the copy is not
// followed here, so lines 102..1000 exist only in the rescue's memory.
func TestRescue_ReadsTheBacklogBetweenWrites(t *testing.T) {
	r, path, w, release := stuckWithRescueOf(t, rescueSetup{pattern: "app.log", backlogTo: 1000, readsBacklog: true})
	rescue := requireNewestFirst(t, r, path)
	writeLines(t, w, 1001, 1100)
	waitRescued(t, r, path, func() bool { return rescue.backlogRead.Load() == rescue.tailFrom })
	truncateAndFinish(t, r, path, w, release, 1101, 1150)
}

// Ensure a file another process opens but never truncates (a reader such
// as cat) is delivered exactly once: what the rescue kept is dropped once
// the loop has read the file itself.
func TestRescue_OpenWithoutTruncationRepeatsNothing(t *testing.T) {
	r, path, w, release := stuckWithRescue(t)
	writeLines(t, w, 102, 200)
	waitRescued(t, r, path, nil)
	release()
	// The rescue lasts a minute here; the drain reads the file while it
	// runs, and must not take its bytes for lost ones.
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 200)
}

// Ensure a rescue wakes for writes, not for the passing of time: an app
// that opens its file for each line (a shell's >>) keeps one running, and
// a wait bounded in microseconds cost thousands of wake-ups a second.
// Twenty writes, each read before the next, with the clock moving on
// between them: at most two sleeps per write, however long that takes.
func TestRescue_SleepsUntilAWrite(t *testing.T) {
	r, path, w, release := stuckWithRescueOf(t, rescueSetup{pattern: "app.log", backlogTo: 101, readsBacklog: true, spin: -1})
	rescue := rescueOf(r.f, path)
	before := rescue.waits.Load()
	writeEachRescued(t, r, path, w, 102, 121, func() {
		tick := time.Now()
		waitFor(t, time.Second, "the clock to move on", func() bool { return time.Since(tick) >= 5*time.Millisecond })
	})
	if waits := rescue.waits.Load() - before; waits > 2*20 {
		t.Errorf("the rescue slept %d times for 20 writes; want at most 40", waits)
	}
	release()
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 121)
}

// Ensure a halt wakes a rescue from its wait: the loop waits for the
// rescue it takes at a truncation, and leaves the file alone while one
// runs. This one would otherwise wait for writes for a minute.
func TestRescue_HaltEndsItsWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(path, []byte("line 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := idOf(fi)
	g := newGuards(time.Minute, testLogger(t))
	fl := &file{path: path, id: id}
	g.add(fl, fd)
	g.opened(path, time.Now().Add(ownOpenGrace)) // another process's open, past the grace
	g.mu.Lock()
	r := fl.guard.rescue
	g.mu.Unlock()
	if r == nil {
		t.Fatal("the open started no rescue")
	}
	waitFor(t, 10*time.Second, "the rescue to read the file and wait", func() bool {
		return r.read.Load() == fi.Size() && r.waits.Load() > 0
	})
	taken := make(chan *rescue, 1)
	go func() { taken <- g.take(fl) }()
	select {
	case got := <-taken:
		kept := make([]byte, got.tailTo-got.tailFrom)
		n, _ := got.keep.ReadAt(kept, got.tailFrom)
		got.keep.Close()
		if got != r || string(kept[:n]) != "line 1\n" {
			t.Errorf("took %p holding %q; want %p holding the file", got, kept[:n], r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the halt did not wake the rescue")
	}
}

// Ensure a rescue reads without sleeping at first: woken by each write's
// event, it read 0.3–1 ms late, after logrotate's truncation had wiped
// the last lines. Twenty lines, each read, and not one sleep.
func TestRescue_SpinsThroughTheCopy(t *testing.T) {
	r, path, w, release := stuckWithRescueOf(t, rescueSetup{pattern: "app.log", backlogTo: 101, readsBacklog: true, spin: time.Minute})
	rescue := rescueOf(r.f, path)
	writeEachRescued(t, r, path, w, 102, 121, nil)
	if waits := rescue.waits.Load(); waits != 0 {
		t.Errorf("the rescue slept %d times while it should spin", waits)
	}
	release()
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 121)
}

// guardedFile returns guards that follow the file at path, as the loop
// would, with fl's guard reading to readTo.
func guardedFile(t *testing.T, path string, poll time.Duration, readTo int64) (*guards, *file) {
	t.Helper()
	g := newGuards(poll, testLogger(t))
	return g, guardFile(t, g, path, readTo)
}

// guardFile opens the file at path and adds it to g as the loop would,
// read to readTo, with the fingerprint of what it holds now.
func guardFile(t *testing.T, g *guards, path string, readTo int64) *file {
	t.Helper()
	fd, fp := openWithFingerprint(t, path)
	fi, err := fd.Stat()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := idOf(fi)
	fl := &file{path: path, id: id, offset: readTo, fp: fp}
	g.add(fl, fd)
	t.Cleanup(func() { g.remove(fl) })
	return fl
}

// Ensure an open whose event comes after the truncation starts no rescue:
// the file then holds the next generation, which a rescue would keep as
// the end of the last one (the loop reads the copy instead). The next
// generation may be shorter than the loop's offset, or longer already.
func TestRescue_NoneOnceTruncated(t *testing.T) {
	old := bytes.Repeat([]byte("line of the generation being copied\n"), 100)
	for _, tc := range []struct {
		name   string
		readTo int
		next   []byte
	}{
		{"shorter than the offset", len(old), []byte("first line of the next generation\n")},
		{"past the offset", 37, bytes.Repeat([]byte("a line of the next generation, longer\n"), 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Fatal(err)
			}
			g, fl := guardedFile(t, path, time.Minute, int64(tc.readTo))
			if err := os.WriteFile(path, tc.next, 0o644); err != nil {
				t.Fatal(err)
			}
			g.opened(path, time.Now().Add(ownOpenGrace))
			g.mu.Lock()
			r := fl.guard.rescue
			g.mu.Unlock()
			if r != nil {
				r.discard()
				t.Fatal("a rescue started on a file truncated before the open was seen")
			}
		})
	}
}

// Ensure a rescue keeps nothing of the next generation when the
// truncation comes between the open's checks and its first read, and the
// file has grown again past the loop's offset by then (bench/copytruncate.sh
// traced it: 122 KB of the next generation framed as the end of the last,
// and the copy resumed past them, 355 lines lost and 349 sent twice). The
// rescue is started here as opened starts it, with the size seen before
// the truncation: with a backlog shorter than tailLead it reads from the
// loop's offset; with a longer one, its look for the newest line start
// finds the file short already.
func TestRescue_KeepsNothingOfTheNextGeneration(t *testing.T) {
	next := bytes.Repeat([]byte("a line of the next generation, longer\n"), 50)
	for _, lines := range []int{100, 1000} {
		t.Run(fmt.Sprintf("%d lines", lines), func(t *testing.T) {
			old := bytes.Repeat([]byte("line of the generation being copied\n"), lines)
			path := filepath.Join(t.TempDir(), "app.log")
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Fatal(err)
			}
			g, fl := guardedFile(t, path, time.Minute, 36) // the first line read
			if err := os.WriteFile(path, next, 0o644); err != nil {
				t.Fatal(err)
			}
			g.mu.Lock()
			r, err := startRescue(path, fl.guard.fd, fl.guard.readTo.Load(), time.Now().Add(time.Minute).UnixNano(), g.spin, g, fl, int64(len(old)))
			if err == nil {
				fl.guard.rescue = r // discarded by guardFile's cleanup
			}
			g.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-r.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("the rescue still runs 10 s after the truncation, having kept %d bytes of the next generation", r.read.Load()-r.tailFrom)
			}
			if r.kept() != 0 {
				t.Fatalf("the rescue kept %d bytes (%d..%d, backlog %d..%d); want none: the file holds the next generation", r.kept(), r.tailFrom, r.tailTo, r.from, r.backlogTo)
			}
		})
	}
}

// Ensure that once a rescue ended without a truncation (a shell's >>
// opens the file for each line), the next ones do not spin, while the
// first one does.
func TestRescue_NoSpinAfterAFalseAlarm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(path, []byte("line 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, fl := guardedFile(t, path, 50*time.Millisecond, 0)
	started := func() *rescue {
		t.Helper()
		g.opened(path, time.Now().Add(ownOpenGrace))
		g.mu.Lock()
		defer g.mu.Unlock()
		if fl.guard.rescue == nil {
			t.Fatal("the open started no rescue")
		}
		return fl.guard.rescue
	}
	first := started()
	if first.spinUntil == 0 {
		t.Error("the first rescue does not spin")
	}
	select {
	case <-first.done: // its time is over; no truncation came
	case <-time.After(10 * time.Second):
		t.Fatal("a rescue of 50 ms still runs after 10 s")
	}
	g.drop(fl) // the loop read past it
	if err := os.WriteFile(path, []byte("line 1\nline 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := started()
	if second.spinUntil != 0 {
		t.Error("a rescue right after a false alarm spins")
	}
}

// Ensure the loop acts on a copier's open between two pieces of a read:
// the layout events' reader waits in Go's poller, which a busy loop keeps
// from running until after the truncation. takeOpens starts the rescue
// itself and keeps the event for the loop's next step.
func TestRescue_TheLoopTakesAnOpenBetweenPieces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	if err := os.WriteFile(path, []byte("line 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := NewFollower(testConfig(t, dir, "app.log"))
	w, err := newWatches()
	if err != nil {
		t.Skip("no inotify:", err)
	}
	defer w.close()
	f.watch = w
	if err := w.add(dir); err != nil {
		t.Fatal(err)
	}
	g := f.guards
	fl := guardFile(t, g, path, 0)
	waitFor(t, 10*time.Second, "the loop's own open to be old", func() bool { return time.Since(fl.guard.added) > ownOpenGrace })
	w.layout.readNow(make([]byte, 4096)) // the loop's own open, already counted out
	appendText(t, path, "line 2\n")
	copier, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	copier.Close()
	f.takeOpens()
	g.mu.Lock()
	r := fl.guard.rescue
	g.mu.Unlock()
	if r == nil {
		t.Fatal("no rescue started between two pieces")
	}
	opens := 0
	for _, ev := range f.takenLayout {
		if ev.mask&unix.IN_OPEN != 0 {
			opens++
		}
	}
	if opens == 0 {
		t.Errorf("the open's event was not kept for the loop: %v", f.takenLayout)
	}
}

// Ensure the lines written after the rescue's last read and before the
// truncation are delivered: the rescue is held off its reads (as the
// kernel holds a rescue off the cores) while the writer adds them and the
// copier truncates. Only the page the rescue pinned holds them then.
// Every line once.
func TestRescue_ThePinKeepsWhatNoReadReached(t *testing.T) {
	t.Run("asleep", func(t *testing.T) { pinScenario(t, false) })
	// The rescue's last read takes a line that runs into a new page, and
	// the rescue is held right after it: the pin of that page has had no
	// look to confirm it, and the truncation comes before one.
	t.Run("after a read into a new page", func(t *testing.T) { pinScenario(t, true) })
}

// pinScenario holds a sleeping rescue off its reads (after one more read,
// into a new page, with intoNewPage) while ten lines are written into the
// page the file ends in and the file is truncated, and requires every
// line once, the ten from the pin.
func pinScenario(t *testing.T, intoNewPage bool) {
	t.Helper()
	var held atomic.Bool
	var passes atomic.Int32 // turns the rescue may take while held
	resume := make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(resume) }) }
	r, path, w, release := stuckWithRescueOf(t, rescueSetup{pattern: "app.log", backlogTo: 101, readsBacklog: true, spin: -1, beforeRead: func() {
		if held.Load() && passes.Add(-1) < 0 {
			<-resume
		}
	}})
	t.Cleanup(let)
	rescue := rescueOf(r.f, path)
	// Lines one at a time, each read, until the file ends where the
	// scenario needs it: early in a page, so that the ten lines held back
	// below fit in the page it ends in; or less than a line before a
	// page's end, so that the next line runs into the next page.
	ps := int64(os.Getpagesize())
	lineLen := func(n int) int64 { return int64(len(line(n)) + 1) }
	ready := func(sz int64, next int) bool {
		if intoNewPage {
			return ps-sz%ps < lineLen(next)-1
		}
		return sz%ps <= ps/2
	}
	last := 101
	for !ready(fileSize(t, path), last+1) || last < 110 {
		last++
		writeEachRescued(t, r, path, w, last, last, nil)
	}
	waitFor(t, 10*time.Second, "the rescue to sleep with its pin confirmed", func() bool {
		read, _ := rescueRead(r.f, path)
		return read >= fileSize(t, path) && rescue.asleep.Load()
	})
	held.Store(true)
	if intoNewPage {
		// The write wakes the rescue: one turn reads the line, and the
		// next waits.
		passes.Store(1)
		last++
		written := fileSize(t, path) + lineLen(last)
		writeLines(t, w, last, last)
		waitFor(t, 10*time.Second, "the rescue to read the line into the new page", func() bool {
			read, _ := rescueRead(r.f, path)
			return read >= written
		})
	}
	before := fileSize(t, path)
	writeLines(t, w, last+1, last+10)
	if (fileSize(t, path)-1)/ps != before/ps {
		t.Fatalf("the held-back lines ran into the next page (file size %d); the test must keep them in one", fileSize(t, path))
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, last+11, last+20)
	let()
	release()
	waitCount(t, r, last+20)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), last+20)
	if rescue.pinned == 0 {
		t.Fatal("the lines came, but not from the pin")
	}
}
