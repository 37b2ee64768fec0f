package tailer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// slowHandler takes each line in per of the bubble's time, as records that
// take long to hand on do (a cold first batch growing its buffers).
type slowHandler struct {
	per   time.Duration
	lines int
}

func (h *slowHandler) Handle(context.Context, Line) error {
	time.Sleep(h.per)
	h.lines++
	return nil
}

func (h *slowHandler) CaughtUp() {}

// Ensure the loop looks for a copier's open between the lines of one
// piece of a read, not only before each read: 64 KiB of lines took 3.6 ms
// to hand on in a cold first batch (bench/copytruncate.sh, traced), and
// logrotate opened, copied and truncated the file meanwhile, unseen. Here
// 1,000 lines in one piece take 10 µs each of the bubble's time.
func TestRead_LooksForOpensBetweenLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.log")
		var text strings.Builder
		for n := 1; n <= 1000; n++ {
			fmt.Fprintf(&text, "line %04d of one piece\n", n)
		}
		if text.Len() >= readBufferSize {
			t.Fatalf("%d bytes do not fit one piece of %d", text.Len(), readBufferSize)
		}
		if err := os.WriteFile(path, []byte(text.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		f := NewFollower(testConfig(t, dir, "app.log"))
		h := &slowHandler{per: 10 * time.Microsecond}
		f.out = h
		looks := 0
		f.takeOpensFunc = func() { looks++ }
		fd, fp := openWithFingerprint(t, path)
		fl := &file{path: path, fd: fd, fp: fp}
		if err := f.readToEnd(context.Background(), fl, -1, false); err != nil {
			t.Fatal(err)
		}
		if h.lines != 1000 {
			t.Fatalf("handed on %d lines; want 1000", h.lines)
		}
		// 64 lines take 640 µs, more than lookEvery: a look every
		// linesPerLook lines, besides the one before each read.
		if want := 1000 / linesPerLook; looks < want {
			t.Errorf("looked for opens %d times in 10 ms of handing on 1,000 lines; want at least %d", looks, want)
		}
	})
}

// Ensure a read that comes after a truncation the loop's look at the head
// missed frames none of the next generation's bytes as the last one's.
// Traced (bench/copytruncate.sh, 5m share): the loop had read 2 lines,
// found the head unchanged, and logrotate truncated the file before the
// read; nginx wrote again, and the read returned the new generation's
// bytes from the old offset on: 3 lines of the old generation lost, 3 of
// the new sent twice. Here the truncation comes between the look and the
// read, as the loop's hook before each read.
func TestRead_AReadAfterAnUnseenTruncationKeepsNothingOfIt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, 1, 3)
	f, c, fl := loopOf(t, dir, "app.log", path)
	if err := f.readToEnd(context.Background(), fl, -1, false); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, 4, 2000)
	truncations := 0
	f.takeOpensFunc = func() {
		if truncations > 0 {
			return
		}
		truncations++
		// copytruncate, and the writer again: fewer bytes than the old
		// generation had but more than were read.
		copyTruncateTo(t, path, path+".1")
		appendFile(t, path, 2001, 2010)
	}
	if err := f.readToEnd(context.Background(), fl, -1, false); err != nil {
		t.Fatal(err)
	}
	if truncations != 1 {
		t.Fatalf("truncated %d times; want 1", truncations)
	}
	requireExactlyOnce(t, c.texts(), 2010)
}
