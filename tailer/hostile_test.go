package tailer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// countsByPath counts the records received from each file.
func countsByPath(lines []Line) map[string]int {
	out := make(map[string]int)
	for _, l := range lines {
		out[filepath.Base(l.Path)]++
	}
	return out
}

// Ensure files that start exactly like a followed one (jobs writing the
// same header) are new files, read whole: only a copy whose original was
// truncated may resume past its start.
func TestFollower_NewFilesThatStartAlikeAreReadWhole(t *testing.T) {
	dir := t.TempDir()
	head := "job 7f3a started\nconfig loaded from /etc/batch/job.yaml\nconnecting to db\n" // 73 bytes: enough to pass for a copy by its head
	if len(head) < copyMinFingerprint {
		t.Fatalf("the shared head (%d bytes) must be long enough to pass for a copy", len(head))
	}
	if err := os.WriteFile(filepath.Join(dir, "job-1.log"), []byte(head), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir, "job-*.log")
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "job-1's lines", func() bool { return len(r.c.snapshot()) >= 3 })
	for _, name := range []string{"job-2.log", "job-3.log", "job-4.log"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(head), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// One more that goes on differently is decided at once.
	if err := os.WriteFile(filepath.Join(dir, "job-5.log"), []byte(head+"job 5 failed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "every job's lines", func() bool { return len(r.c.snapshot()) >= 16 })
	r.stop(t)
	got := countsByPath(r.c.snapshot())
	want := map[string]int{"job-1.log": 3, "job-2.log": 3, "job-3.log": 3, "job-4.log": 3, "job-5.log": 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records per file %v, want %v", got, want)
	}
	if n := r.f.Stats().Copied; n != 0 {
		t.Errorf("%d files taken for copies", n)
	}
}

// Ensure a possible copy that is still undecided when the drain begins is
// read from its start rather than left unread.
func TestFollower_UndecidedCopyIsReadAtTheDrain(t *testing.T) {
	dir := t.TempDir()
	head := strings.Repeat("same header line of a batch job\n", 3)
	os.WriteFile(filepath.Join(dir, "a.log"), []byte(head), 0o644)
	cfg := testConfig(t, dir, "*.log")
	cfg.RotateWait = time.Hour // the copy would wait all that time
	logs := &syncWriter{}
	cfg.Log = zerolog.New(logs).Level(zerolog.DebugLevel)
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "a.log's lines", func() bool { return len(r.c.snapshot()) >= 3 })
	os.WriteFile(filepath.Join(dir, "b.log"), []byte(head), 0o644)
	waitFor(t, 10*time.Second, "b.log to be found and its decision deferred", func() bool {
		return strings.Contains(logs.String(), "may be a copy still being written")
	})
	r.stop(t)
	if got := countsByPath(r.c.snapshot()); got["b.log"] != 3 {
		t.Fatalf("records per file %v; b.log's 3 lines must be read at the drain", got)
	}
}

// Ensure symlinks are followed only into the patterns' directories or
// TAILCAR_SYMLINK_ROOTS: a link to a file elsewhere (/etc/passwd, a
// mounted secret) and a link to tailcar's own positions are refused,
// warned about once and counted; ** does not descend into linked
// directories (a link to / or to .. would make every scan endless); a
// link and its target that both match are one file.
func TestFollower_SymlinksAreConfined(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	secret := filepath.Join(outside, "password")
	os.WriteFile(secret, []byte("hunter2 seq=999999\n"), 0o600)
	allowed := t.TempDir()
	os.WriteFile(filepath.Join(allowed, "c.log"), []byte(line(3)+"\n"), 0o644)

	appendFile(t, filepath.Join(dir, "a.log"), 1, 1)
	must(t, os.Symlink(secret, filepath.Join(dir, "evil.log")))
	must(t, os.Symlink(filepath.Join(dir, ".tailcar-positions"), filepath.Join(dir, "self.log")))
	must(t, os.Symlink(filepath.Join(dir, "a.log"), filepath.Join(dir, "alias.log")))
	must(t, os.Symlink(filepath.Join(allowed, "c.log"), filepath.Join(dir, "c.log")))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	appendFile(t, filepath.Join(dir, "sub", "b.log"), 2, 2)
	must(t, os.Symlink("/", filepath.Join(dir, "sub", "root")))
	must(t, os.Symlink("..", filepath.Join(dir, "sub", "up")))

	logs := &syncWriter{}
	cfg := testConfig(t, dir, "**/*.log")
	cfg.SymlinkRoots = []string{allowed}
	cfg.Log = zerolog.New(logs)
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "the three allowed files", func() bool { return len(r.c.snapshot()) >= 3 })
	// Files that only a scan finds, one after another: the refusals are
	// not repeated at each scan.
	for i := 4; i <= 6; i++ {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("new-%d.log", i)), i, i)
		waitCount(t, r, i)
	}
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 6)
	for _, l := range r.c.snapshot() {
		if strings.Contains(string(l.Text), "hunter2") || strings.Contains(l.Path, "evil") || strings.Contains(l.Path, "self") {
			t.Fatalf("followed a refused link: %s: %q", l.Path, l.Text)
		}
	}
	if n := r.f.Stats().Refused; n != 1 {
		t.Errorf("%d refusals counted, want 1 (evil.log; self.log is tailcar's own and silently skipped)", n)
	}
	if n := strings.Count(logs.String(), "matching file not followed"); n != 1 {
		t.Errorf("%d refusal warnings, want 1:\n%s", n, logs.String())
	}
}

// syncWriter lets the follower's goroutine log while the test reads.
type syncWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Ensure a deleted file whose last line has no newline is finished, that
// line included, and let go once it has stopped changing, not held open
// (and its space held) until tailcar stops.
func TestFollower_DeletedFileWithPartialLastLineIsLetGo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.log")
	cfg := testConfig(t, dir, "*.log")
	os.WriteFile(path, []byte("b1 seq=1\nb2-partial seq=2"), 0o644)
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "the first line", func() bool { return len(r.c.snapshot()) >= 1 })
	must(t, os.Remove(path))
	waitFor(t, 10*time.Second, "the partial line, and the file let go", func() bool {
		return len(r.c.snapshot()) == 2 && len(r.f.Files()) == 0 && !fdOpenTo(t, path)
	})
	r.stop(t)
	if got := r.c.texts(); strings.Join(got, "|") != "b1 seq=1|b2-partial seq=2" {
		t.Fatalf("records %q", got)
	}
}

// fdOpenTo reports whether this process holds a descriptor to path.
func fdOpenTo(t *testing.T, path string) bool {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, path) {
			return true
		}
	}
	return false
}

// Ensure no file operation blocks on a FIFO: one renamed over a followed
// file, or matching from the start, is refused and the follower goes on.
func TestFollower_FIFONeverBlocks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, 1, 10)
	must(t, syscall.Mkfifo(filepath.Join(dir, "pipe.log"), 0o644))
	cfg := testConfig(t, dir, "*.log")
	r := startFollower(t, cfg)
	waitCount(t, r, 10)
	fifo := filepath.Join(dir, "fifo.tmp")
	must(t, syscall.Mkfifo(fifo, 0o644))
	must(t, os.Rename(fifo, path))
	appendFile(t, filepath.Join(dir, "other.log"), 11, 20)
	waitCount(t, r, 20)
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 20)
	if n := r.f.Stats().Refused; n < 1 {
		t.Errorf("%d refusals; the FIFOs must be counted", n)
	}
}

// Ensure a positions file with one malformed entry keeps the others.
func TestPositions_MalformedEntryKeepsTheOthers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pos")
	good := `{"source":"a1","path":"/x","dev":1,"ino":2,"fp_len":3,"fp":"ff","offset":10,"seen":"2026-11-30T00:00:00Z"}`
	body := `{"version":1,"files":[` + good + `,{"source":"zz","offset":"x"},{"source":"b2","path":"/y","dev":1,"ino":3,"fp_len":0,"fp":"0","offset":-5}]}`
	must(t, os.WriteFile(path, []byte(body), 0o644))
	var logs bytes.Buffer
	p, err := LoadPositions(path, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	if off, ok := p.Offset(0xa1); !ok || off != 10 || p.Len() != 1 {
		t.Fatalf("kept %d entries, a1 at %d (%v); want only the good one", p.Len(), off, ok)
	}
	if n := strings.Count(logs.String(), "malformed positions entry"); n != 2 {
		t.Errorf("%d warnings, want one per bad entry:\n%s", n, logs.String())
	}
}

// Ensure TAILCAR_START_AT=end applies only to files tailcar never had a
// checkpoint for: a file that replaced a followed one under its name
// while tailcar was down is read from its start.
func TestFollower_StartAtEndSparesFilesWithACheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, 1, 100)
	cfg := testConfig(t, dir, "app.log")
	r := startFollower(t, cfg)
	waitCount(t, r, 100)
	r.stop(t)
	must(t, cfg.Positions.save(true))
	// While down, the file is replaced by another with the same name.
	must(t, os.Remove(path))
	appendFile(t, path, 101, 150)

	cfg2 := testConfig(t, dir, "app.log")
	cfg2.StartAtEnd = true
	r2 := startFollower(t, cfg2)
	waitCount(t, r2, 50)
	r2.stop(t)
	requireExactlyOnce(t, append(r.c.texts(), r2.c.texts()...), 150)
}

// Ensure a matching file that cannot be opened is warned about once and
// counted, not retried silently at every scan.
func TestFollower_UnreadableFileIsWarnedOnce(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root opens any file; the end-to-end test runs tailcar as another user for this")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.log")
	os.WriteFile(path, []byte("x\n"), 0o000)
	appendFile(t, filepath.Join(dir, "ok.log"), 1, 5)
	logs := &syncWriter{}
	cfg := testConfig(t, dir, "*.log")
	cfg.Log = zerolog.New(logs)
	r := startFollower(t, cfg)
	waitCount(t, r, 5)
	for i := 6; i <= 8; i++ { // files that only a scan finds
		appendFile(t, filepath.Join(dir, fmt.Sprintf("new-%d.log", i)), i, i)
		waitCount(t, r, i)
	}
	r.stop(t)
	if n := strings.Count(logs.String(), "matching file not followed"); n != 1 || r.f.Stats().Refused != 1 {
		t.Fatalf("%d warnings, %d refusals; want one of each:\n%s", n, r.f.Stats().Refused, logs.String())
	}
}

// Ensure a look at a followed file after a truncation the loop has not
// noticed yet does not make its real copy look like a new file. An earlier
// look at the copy (deferred while a rescue ran) read the original's first
// bytes and kept them as its generation's lead; after the truncation they
// were the next generation's, whose lines start otherwise (a JSON time,
// the minute in an nginx line), and the copy, refused by that lead, was
// read again from its start.
func TestCopy_ALookAfterAnUnseenTruncationDoesNotRefuseTheCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	appendFile(t, path, 1, 3)
	f, c, orig := loopOf(t, dir, "access.log*", path)
	f.files[orig.id] = orig
	must(t, f.readToEnd(context.Background(), orig, -1, false))

	appendFile(t, path, 4, 3001)
	copyTruncateTo(t, path, path+".1")
	old, err := os.ReadFile(path + ".1")
	must(t, err)
	// The next generation starts with line 3002, whose first 32 bytes
	// (10.0.0.2 - - [...) differ from line 1's (10.0.0.1 ...).
	appendFile(t, path, 3002, 3021)
	if bytes.Equal([]byte(line(1))[:leadLen], []byte(line(3002))[:leadLen]) {
		t.Fatal("the two generations start alike; the test needs them not to")
	}
	f.isPrefixOf(old[:fingerprintMax], orig) // the earlier look, after the truncation

	copyFd, err := os.Open(path + ".1")
	must(t, err)
	defer copyFd.Close()
	d, err := f.copyOf(context.Background(), copyFd, candidate{path: path + ".1", real: path + ".1", id: idOfPath(t, path+".1"), size: int64(len(old)), mtime: time.Now()}, nil)
	must(t, err)
	if !d.resume || d.offset != int64(len(old)) {
		t.Fatalf("the copy was decided %+v; want it resumed at its end (%d), every line of it read already", d, len(old))
	}
	// The original's next generation was read on once the truncation
	// was noticed.
	requireExactlyOnce(t, c.texts(), 3021)
}
