package tailer

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// isFollowing reports whether the file now at path is followed.
func isFollowing(t *testing.T, cfg Config, path string) bool {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	id, _ := idOf(fi)
	for _, e := range cfg.Positions.snapshot() {
		if e.id == id {
			return true
		}
	}
	return false
}

// Ensure rename rotation during bursts loses nothing: the old descriptor
// is read to its end, including lines the app writes after the rename,
// and the new file is read from its start.
func TestFollower_RotateRenameUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	cfg := testConfig(t, dir, "access.log")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r := startFollower(t, cfg)
	n := 0
	for gen := 1; gen <= 5; gen++ {
		writeLines(t, w, n+1, n+20000) // a burst the follower is behind on
		n += 20000
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, gen)); err != nil {
			t.Fatal(err)
		}
		writeLines(t, w, n+1, n+500) // the app has not reopened yet
		n += 500
		w.Close()
		if w, err = os.Create(path); err != nil {
			t.Fatal(err)
		}
		// Rotations are minutes apart in life; here, only as far apart as
		// it takes to notice the new file.
		waitFor(t, 10*time.Second, "the new file to be followed", func() bool { return isFollowing(t, cfg, path) })
	}
	writeLines(t, w, n+1, n+1000)
	n += 1000
	w.Close()
	waitCount(t, r, n)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), n)
}

// Ensure a pattern that also matches rotated names (access.log*) follows
// the renamed file by identity and does not read it twice.
func TestFollower_RotateRenameMatchedByPattern(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	cfg := testConfig(t, dir, "access.log*")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r := startFollower(t, cfg)
	n := 0
	for gen := 1; gen <= 4; gen++ {
		writeLines(t, w, n+1, n+10000)
		n += 10000
		// logrotate's numbering: .2 is dropped, .1 becomes .2, the file .1
		os.Remove(path + ".2")
		os.Rename(path+".1", path+".2")
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		writeLines(t, w, n+1, n+200)
		n += 200
		w.Close()
		if w, err = os.Create(path); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the new file to be followed", func() bool { return isFollowing(t, cfg, path) })
	}
	writeLines(t, w, n+1, n+500)
	n += 500
	w.Close()
	waitCount(t, r, n)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), n)
}

// copyTruncate rotates path as logrotate's copytruncate does: shift the
// numbered copies, copy the file to .1, truncate the file.
func copyTruncate(t *testing.T, path string) {
	t.Helper()
	os.Remove(path + ".2")
	os.Rename(path+".1", path+".2")
	copyTruncateTo(t, path, path+".1")
}

// copyTruncateTo copies path to copyPath (another open of path), then
// truncates path, and returns how much it copied.
func copyTruncateTo(t *testing.T, path, copyPath string) int64 {
	t.Helper()
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	n, err := io.Copy(dst, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	return n
}

// Ensure copytruncate under load loses nothing and repeats nothing when
// the pattern follows the copies: the truncation is detected, the file is
// read again from 0, and what the follower had not read before the
// truncation is recovered from the copy.
func TestFollower_RotateCopyTruncateUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	cfg := testConfig(t, dir, "access.log*")
	w := openAppend(t, path)
	r := startFollower(t, cfg)
	n := 0
	for gen := 1; gen <= 5; gen++ {
		writeLines(t, w, n+1, n+20000) // a burst the follower is behind on
		n += 20000
		copyTruncate(t, path)
		// Rotations are hours apart in life; here, only as far apart as it
		// takes to notice the copy, while the backlog is still being read.
		waitFor(t, 10*time.Second, "the copy to be followed", func() bool { return isFollowing(t, cfg, path+".1") })
	}
	writeLines(t, w, n+1, n+1000)
	n += 1000
	waitCount(t, r, n)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), n)
}

// Ensure a deleted file's open descriptor is read to its end, including
// lines written after the delete, before it is closed.
func TestFollower_DeletedFileReadToEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(t, dir, "app.log")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "the file to be followed", func() bool { return isFollowing(t, cfg, path) })
	writeLines(t, w, 1, 20000)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, 20001, 20500)
	w.Close()
	appendFile(t, path, 20501, 21000)
	waitCount(t, r, 21000)
	waitFor(t, 10*time.Second, "the deleted file to be let go", func() bool {
		return len(cfg.Positions.snapshot()) == 1
	})
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 21000)
}

// Ensure a truncation followed by regrowth past the old offset, before
// the follower looks, is recognised by the fingerprint, and the new
// content is read from its start.
func TestFollower_TruncateAndRegrow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(t, dir, "app.log")
	appendFile(t, path, 1, 100)
	r := startFollower(t, cfg)
	waitCount(t, r, 100)
	// Rewrite in place: truncate and write more than before in one step,
	// so only the content can tell.
	var buf bytes.Buffer
	for i := 101; i <= 400; i++ {
		buf.WriteString(line(i) + "\n")
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	waitCount(t, r, 400)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 400)
}

// Ensure a line is handed over only once its newline arrives, never split,
// and that at the drain a trailing partial line is shipped as it is.
func TestFollower_PartialLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(t, dir, "app.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := startFollower(t, cfg)
	f.WriteString("first half of a line")
	f.WriteString(", and ")
	// A complete line after the partial one proves the partial one was
	// held, not dropped or split.
	f.WriteString("its second half\nnext line\n")
	waitFor(t, 10*time.Second, "two lines", func() bool { return len(r.c.texts()) >= 2 })
	f.WriteString("trailing line without newline")
	r.stop(t)
	got := r.c.texts()
	want := []string{"first half of a line, and its second half", "next line", "trailing line without newline"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	lines := r.c.snapshot()
	if end := lines[2].End; end != int64(len("first half of a line, and its second half\nnext line\ntrailing line without newline")) {
		t.Errorf("the trailing line ends at %d, want the file size", end)
	}
}

// Ensure a line longer than the record cap is cut on a rune boundary and
// marked truncated, the rest of it is skipped, and its neighbours are
// intact.
func TestFollower_LongLineIsCutNotSplit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(t, dir, "app.log")
	cfg.MaxRecordBytes = 1000
	long := strings.Repeat("é", 3<<20) // 6 MiB of two-byte runes
	content := line(1) + "\n" + long + "\n" + line(2) + "\n" + strings.Repeat("z", 1500) + "\n" + line(3) + "\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "five records", func() bool { return len(r.c.texts()) >= 5 })
	r.stop(t)
	got := r.c.snapshot()
	if len(got) != 5 {
		t.Fatalf("got %d records, want 5", len(got))
	}
	if string(got[0].Text) != line(1) || string(got[2].Text) != line(2) || string(got[4].Text) != line(3) {
		t.Fatalf("neighbours damaged: %q %q %q", got[0].Text, got[2].Text, got[4].Text)
	}
	if !got[1].Truncated || len(got[1].Text) != 1000 || string(got[1].Text) != strings.Repeat("é", 500) {
		t.Errorf("long line: truncated=%v, %d bytes", got[1].Truncated, len(got[1].Text))
	}
	if !got[3].Truncated || len(got[3].Text) != 1000 {
		t.Errorf("line over the cap but under the buffer: truncated=%v, %d bytes", got[3].Truncated, len(got[3].Text))
	}
	if got[0].Truncated || got[2].Truncated {
		t.Error("a short line is marked truncated")
	}
	if got[1].End != int64(len(line(1))+1+len(long)+1) {
		t.Errorf("the long record ends at %d; its checkpoint must be past its newline", got[1].End)
	}
}

// Ensure a Java stack trace becomes one record, the next start line closes
// it, and the last record is closed after the idle wait.
func TestFollower_Multiline(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(t, dir, "app.log")
	cfg.Multiline = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} `)
	trace := "2026-11-25 10:00:01 ERROR request failed\n" +
		"java.lang.IllegalStateException: boom\n" +
		"\tat com.shop.Cart.add(Cart.java:42)\n" +
		"\tat com.shop.Api.handle(Api.java:7)\n" +
		"Caused by: java.io.IOException: disk\n" +
		"\t... 2 more\n"
	content := "2026-11-25 10:00:00 INFO started\n" + trace + "2026-11-25 10:00:02 INFO last\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startFollower(t, cfg)
	// The last record has no successor: only the idle wait can close it.
	waitFor(t, 10*time.Second, "three records", func() bool { return len(r.c.texts()) >= 3 })
	got := r.c.texts()
	want := []string{"2026-11-25 10:00:00 INFO started", strings.TrimSuffix(trace, "\n"), "2026-11-25 10:00:02 INFO last"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	r.stop(t)
	if end := r.c.snapshot()[2].End; end != int64(len(content)) {
		t.Errorf("last record ends at %d, want %d", end, len(content))
	}
}

// Ensure invalid bytes pass through the tailer untouched (the encoder
// replaces them) and do not disturb framing.
func TestFollower_BinaryGarbageKeepsFraming(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(t, dir, "app.log")
	garbage := []byte{0xff, 0xfe, 0x00, 0x01, 0x1b, '[', '3', '1', 'm', 0xc3}
	content := append([]byte(line(1)+"\n"), garbage...)
	content = append(content, '\n')
	content = append(content, line(2)+"\n"...)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "three records", func() bool { return len(r.c.texts()) >= 3 })
	r.stop(t)
	got := r.c.snapshot()
	if !bytes.Equal(got[1].Text, garbage) || string(got[0].Text) != line(1) || string(got[2].Text) != line(2) {
		t.Fatalf("got %q", r.c.texts())
	}
}

// Ensure 1,000 files are all shipped while open descriptors stay bounded,
// with one watch for their one directory.
func TestFollower_ManyFilesBoundedDescriptors(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "*.log")
	cfg.MaxOpen = 64
	const files, perFile = 1000, 20
	for i := range files {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), i*perFile*2+1, i*perFile*2+perFile)
	}
	r := startFollower(t, cfg)
	waitFor(t, 60*time.Second, "every file's first lines", func() bool { return len(r.c.texts()) >= files*perFile })
	// Let scans close what is idle, then grow every file again: each must
	// be reopened by identity.
	for i := range files {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), i*perFile*2+perFile+1, (i+1)*perFile*2)
	}
	waitFor(t, 60*time.Second, "every file's second lines", func() bool { return len(r.c.texts()) >= files*perFile*2 })
	fds := openDescriptors(t)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), files*perFile*2)
	if fds > cfg.MaxOpen+32 {
		t.Errorf("%d descriptors open with %d files, want about MaxOpen=%d", fds, files, cfg.MaxOpen)
	}
	if n := len(r.f.watch.change.wds); n != 1 {
		t.Errorf("%d directory watches, want 1", n)
	}
}

func openDescriptors(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// Ensure a restart resumes from the acked offsets: nothing is lost, and
// only what was in flight (read but not acked) is read again.
func TestFollower_RestartResumesFromAcks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, 1, 5000)
	cfg := testConfig(t, dir, "app.log")
	r := startFollowerAcking(t, cfg, 3000) // 2,000 lines are read but "in flight" when it dies
	waitCount(t, r, 5000)
	if err := cfg.Positions.save(true); err != nil {
		t.Fatal(err)
	}
	r.kill()
	first := r.c.texts()

	appendFile(t, path, 5001, 6000) // written while tailcar was down
	cfg2 := testConfig(t, dir, "app.log")
	r2 := startFollower(t, cfg2)
	waitCount(t, r2, 6000-3000)
	r2.stop(t)
	all := append(first, r2.c.texts()...)
	c := seq.Count(all, 6000)
	t.Logf("delivery across the restart: %s", c)
	if c.Missing != 0 || c.Duplicated != 2000 {
		t.Fatalf("want 0 missing and exactly the 2000 unacked lines again; %s", c)
	}
}

// Ensure a corrupt positions file is reported and ignored: tailcar starts
// as on a first start rather than crashing or reading nothing.
func TestPositions_CorruptFileFallsBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, 1, 100)
	if err := os.WriteFile(filepath.Join(dir, ".tailcar-positions"), []byte("{\"version\":1,\"files\":[{\"sour"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir, "app.log")
	r := startFollower(t, cfg)
	waitCount(t, r, 100)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 100)

	if err := os.WriteFile(filepath.Join(dir, ".tailcar-positions"), []byte(`{"version":99,"files":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPositions(filepath.Join(dir, ".tailcar-positions"), testLogger(t)); err != nil {
		t.Fatalf("a positions file of another version must not fail the start: %v", err)
	}
}

// Ensure a file rotated away while tailcar was down is found by identity
// in its directory, finished from its checkpoint, and let go; the new file
// at the path is read from its start.
func TestFollower_RotatedWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	appendFile(t, path, 1, 1000)
	cfg := testConfig(t, dir, "access.log")
	r := startFollower(t, cfg)
	waitCount(t, r, 1000)
	r.stop(t)
	if err := cfg.Positions.save(true); err != nil {
		t.Fatal(err)
	}
	// While down: more lines, rotation, lines in the new file.
	appendFile(t, path, 1001, 1500)
	if err := os.Rename(path, path+"-20261125"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, 1501, 2000)

	cfg2 := testConfig(t, dir, "access.log")
	r2 := startFollower(t, cfg2)
	waitCount(t, r2, 1000)
	r2.stop(t)
	requireExactlyOnce(t, append(r.c.texts(), r2.c.texts()...), 2000)
}

// Ensure TAILCAR_START_AT=end skips what files hold at start, but not
// what they get later, nor files that appear later.
func TestFollower_StartAtEnd(t *testing.T) {
	dir := t.TempDir()
	appendFile(t, filepath.Join(dir, "old.log"), 1, 100)
	cfg := testConfig(t, dir, "*.log")
	cfg.StartAtEnd = true
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "the file to be followed", func() bool { return isFollowing(t, cfg, filepath.Join(dir, "old.log")) })
	appendFile(t, filepath.Join(dir, "old.log"), 101, 150)
	appendFile(t, filepath.Join(dir, "new.log"), 151, 200)
	waitFor(t, 10*time.Second, "100 lines", func() bool { return len(r.c.texts()) >= 100 })
	r.stop(t)
	c := seq.Count(r.c.texts(), 200)
	// Exactly 101..200: the missing ones are 1..100, all of them.
	if c.Received != 100 || c.Duplicated != 0 || c.Missing != 100 || c.MissingSeqs[0] != 1 || c.MissingSeqs[99] != 100 {
		t.Fatalf("want exactly lines 101-200; %s; missing %v…", c, c.FirstMissing(5))
	}
}

// Ensure excluded patterns and tailcar's own files are never followed.
func TestFollower_ExcludeAndOwnFiles(t *testing.T) {
	dir := t.TempDir()
	appendFile(t, filepath.Join(dir, "a.log"), 1, 10)
	appendFile(t, filepath.Join(dir, "a.log.1.gz"), 11, 20)
	os.MkdirAll(filepath.Join(dir, "archive"), 0o755)
	appendFile(t, filepath.Join(dir, "archive", "b.log"), 21, 30)
	cfg := testConfig(t, dir, "**")
	cfg.Exclude = []string{"*.gz", filepath.Join(dir, "archive", "*")}
	if err := os.WriteFile(cfg.Positions.Path()+".heartbeat", []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startFollower(t, cfg)
	waitCount(t, r, 10)
	// Both positions files: the durable one, and the recent one beside it.
	if err := cfg.Positions.save(true); err != nil {
		t.Fatal(err)
	}
	cfg.Positions.mu.Lock()
	cfg.Positions.markDirtyLocked()
	cfg.Positions.mu.Unlock()
	if err := cfg.Positions.save(false); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "a.log"), 31, 40)
	waitFor(t, 10*time.Second, "20 lines", func() bool { return len(r.c.texts()) >= 20 })
	r.stop(t)
	for _, l := range r.c.snapshot() {
		if filepath.Base(l.Path) != "a.log" {
			t.Fatalf("followed %s", l.Path)
		}
	}
	if n := len(r.c.texts()); n != 20 {
		t.Fatalf("got %d records, want the 20 of a.log", n)
	}
}

// Ensure the record cap applies to a joined multiline record: it is cut,
// marked, and the record after it is intact.
func TestFollower_MultilineIsCapped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(t, dir, "app.log")
	cfg.Multiline = regexp.MustCompile(`^START`)
	cfg.MaxRecordBytes = 100
	var b strings.Builder
	b.WriteString("START long trace\n")
	for range 50 {
		b.WriteString("\tat frame.of.a.deep.stack(Frame.java:1)\n")
	}
	b.WriteString("START next\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "two records", func() bool { return len(r.c.texts()) >= 2 })
	r.stop(t)
	got := r.c.snapshot()
	if len(got) != 2 || len(got[0].Text) != 100 || !got[0].Truncated || string(got[1].Text) != "START next" || got[1].Truncated {
		t.Fatalf("got %d records: %q", len(got), r.c.texts())
	}
}

// Ensure entries of files no longer followed are pruned once old, and the
// entries of followed files are kept however old.
func TestPositions_PruneDropsOnlyOldUnfollowed(t *testing.T) {
	p, err := LoadPositions(filepath.Join(t.TempDir(), "pos"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p.track(entry{source: 1, path: "/a"})
	p.track(entry{source: 2, path: "/b"})
	p.track(entry{source: 3, path: "/c"})
	future := time.Now().Add(pruneAfter + time.Hour)
	p.prune(map[uint64]bool{1: true}, future)
	if _, ok := p.Offset(1); !ok {
		t.Error("the followed file's entry was pruned")
	}
	for _, src := range []uint64{2, 3} {
		if _, ok := p.Offset(src); ok {
			t.Errorf("entry %d survived the prune", src)
		}
	}
	p.track(entry{source: 4, path: "/d"})
	p.prune(nil, time.Now())
	if _, ok := p.Offset(4); !ok {
		t.Error("a fresh entry was pruned")
	}
	// Saved and loaded again, an entry keeps everything it needs.
	p.Ack(4, 1234)
	if err := p.save(true); err != nil {
		t.Fatal(err)
	}
	q, err := LoadPositions(p.Path(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if off, ok := q.Offset(4); !ok || off != 1234 {
		t.Errorf("after a reload: offset %d, %v", off, ok)
	}
}

// Ensure neither a pattern's directory nor its files need exist at start:
// they are followed from their start when they appear, deep ones under **
// too.
func TestFollower_DirectoriesAppearLater(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "later/**/*.log")
	r := startFollower(t, cfg)
	deep := filepath.Join(dir, "later", "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(deep, "x.log"), 1, 100)
	appendFile(t, filepath.Join(dir, "later", "y.log"), 101, 200)
	waitCount(t, r, 200)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 200)
}

// Ensure the follower says it has caught up once it has handed over every
// line it knows of, in turns of events and of a backlog alike, so that a
// turn's batch can leave in the turn's own wake-up.
func TestFollower_SaysWhenCaughtUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, 1, 30000) // a backlog of several read turns
	cfg := testConfig(t, dir, "app.log")
	r := startFollower(t, cfg)
	waitCount(t, r, 30000)
	waitFor(t, 10*time.Second, "CaughtUp after the backlog", func() bool { return r.c.notCaughtUp() == 0 })
	for i := 1; i <= 3; i++ {
		appendFile(t, path, 30000+(i-1)*100+1, 30000+i*100) // lines as an app writes them
		waitCount(t, r, 30000+i*100)
		waitFor(t, 10*time.Second, "CaughtUp after appended lines", func() bool { return r.c.notCaughtUp() == 0 })
	}
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 30300)
}

// stepPulse records whether the follow loop is inside a step.
type stepPulse struct{ busy atomic.Bool }

func (p *stepPulse) Busy()    { p.busy.Store(true) }
func (p *stepPulse) Waiting() { p.busy.Store(false) }

// A follower that has finished its drain is in no step: the sender may
// go on delivering for the whole drain timeout, and a loop left marked
// busy would be reported stuck after 10 s, failing the probe of a tailcar
// that is only waiting for its backend.
func TestFollower_FinishedIsNotBusy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, 1, 100)
	cfg := testConfig(t, dir, "app.log")
	pulse := &stepPulse{}
	cfg.Pulse = pulse
	r := startFollower(t, cfg)
	waitCount(t, r, 100)
	r.stop(t)
	if pulse.busy.Load() {
		t.Fatal("the follow loop returned from its drain still marked busy")
	}
	requireExactlyOnce(t, r.c.texts(), 100)
}

// One slow scan does not push the safety net back; scans that are all
// slow (thousands of files) do, by rescanBudget times what they cost.
func TestScanCost_OneSlowScanDoesNotPushTheSafetyNetBack(t *testing.T) {
	const interval = 2 * time.Second
	var c scanCost
	steps := []struct {
		took, want time.Duration
	}{
		{1 * time.Millisecond, interval},
		{300 * time.Millisecond, interval}, // kept waiting once
		{1 * time.Millisecond, interval},
		{50 * time.Millisecond, interval},
		{60 * time.Millisecond, 100 * 50 * time.Millisecond}, // slow twice in a row: the files' cost
		{70 * time.Millisecond, 100 * 60 * time.Millisecond},
		{1 * time.Millisecond, interval},
	}
	for i, s := range steps {
		if got := c.next(interval, s.took); got != s.want {
			t.Fatalf("scan %d took %s: next in %s, want %s", i+1, s.took, got, s.want)
		}
	}
	var first scanCost
	if got := first.next(interval, time.Second); got != 100*time.Second {
		t.Fatalf("a first scan of 1s: next in %s, want 100s (no history to doubt it)", got)
	}
}
