package tailer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// criTime is how conmon writes times: RFC 3339 with a numeric offset and
// trailing zeros trimmed.
func criTime(n int) string {
	return time.Date(2026, 12, 2, 10, 0, n%60, n*1000, time.UTC).Format("2006-01-02T15:04:05.999999999-07:00")
}

// criLines is lines from to to in conmon's format, each numbered.
func criLines(from, to int) string {
	var b strings.Builder
	for n := from; n <= to; n++ {
		fmt.Fprintf(&b, "%s stdout F line seq=%d\n", criTime(n), n)
	}
	return b.String()
}

// criConfig follows the kubelet's layout under root through patterns, as
// the DaemonSet does.
func criConfig(t *testing.T, root string, patterns ...string) Config {
	t.Helper()
	cfg := testConfig(t, root, patterns...)
	cfg.Format = FormatCRI
	cfg.SymlinkRoots = []string{filepath.Join(root, "pods")}
	return cfg
}

func appendText(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// Ensure CRI lines become one record per line: P chunks join the next
// chunks of the same stream up to F, with stdout and stderr interleaved,
// bytes joined before UTF-8 is decoded; the runtime's time and the stream
// come along; a joined line over the cap is cut and flagged; malformed
// lines are shipped as plain lines and counted.
func TestFollower_CRIJoinsPartialLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	var b strings.Builder
	long := strings.Repeat("x", 3000)
	fmt.Fprintf(&b, "%s stdout F plain seq=1\n", criTime(1))
	fmt.Fprintf(&b, "%s stdout P start seq=2 \xc3\n", criTime(2)) // a split inside "é"
	fmt.Fprintf(&b, "%s stderr F err seq=3\n", criTime(3))
	fmt.Fprintf(&b, "%s stdout P:x1 \xa9 middle \n", criTime(4))
	fmt.Fprintf(&b, "%s stdout F end\n", criTime(5))
	fmt.Fprintf(&b, "%s stderr P %s\n", criTime(6), long)
	fmt.Fprintf(&b, "%s stderr P %s\n", criTime(7), long)
	fmt.Fprintf(&b, "%s stderr F tail seq=4\n", criTime(8))
	b.WriteString("2026-12-02T10:00:09Z stdout X bad tag seq=5\n")
	b.WriteString("not a time stdout F seq=6\n")
	b.WriteString("2026-12-02T10:00:10Z stdlog F unknown stream seq=7\n")
	fmt.Fprintf(&b, "%s stdout F \n", criTime(11)) // an empty line
	appendText(t, path, b.String())

	cfg := testConfig(t, dir, "*.log")
	cfg.Format, cfg.MaxRecordBytes = FormatCRI, 4000
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "8 records", func() bool { return len(r.c.snapshot()) >= 8 })
	r.stop(t)
	got := r.c.snapshot()
	if len(got) != 8 {
		t.Fatalf("%d records, want 8: %q", len(got), r.c.texts())
	}
	want := []struct {
		text, stream string
		time         int
		cut          bool
		malformed    bool
	}{
		{"plain seq=1", "stdout", 1, false, false},
		{"err seq=3", "stderr", 3, false, false},
		{"start seq=2 é middle end", "stdout", 2, false, false},
		{(long + long + "tail seq=4")[:4000], "stderr", 6, true, false},
		{"2026-12-02T10:00:09Z stdout X bad tag seq=5", "", 0, false, true},
		{"not a time stdout F seq=6", "", 0, false, true},
		{"2026-12-02T10:00:10Z stdlog F unknown stream seq=7", "", 0, false, true},
		{"", "stdout", 11, false, false},
	}
	for i, w := range want {
		l := got[i]
		wantTime := time.Time{}
		if w.time > 0 {
			wantTime = time.Date(2026, 12, 2, 10, 0, w.time%60, w.time*1000, time.UTC)
		}
		if string(l.Text) != w.text || l.Stream != w.stream || !l.Time.Equal(wantTime) || l.Truncated != w.cut || l.Malformed != w.malformed {
			t.Errorf("record %d: %.60q stream %q time %v cut %v malformed %v; want %.60q %q %v %v %v",
				i, l.Text, l.Stream, l.Time, l.Truncated, l.Malformed, w.text, w.stream, wantTime, w.cut, w.malformed)
		}
	}
	if m := r.f.Stats().Malformed; m != 3 {
		t.Errorf("%d malformed lines counted, want 3", m)
	}
	// The record that ended in stdout's F acknowledges the end of that F,
	// and the acks never go backwards.
	var last int64
	for _, l := range got {
		if l.Ack < last {
			t.Fatalf("ack went back from %d to %d", last, l.Ack)
		}
		last = l.Ack
	}
	if size := fileSize(t, path); last != size {
		t.Fatalf("last ack %d, want the file's end %d", last, size)
	}
}

// Ensure a restart in the middle of a P…F sequence neither loses nor
// repeats any part of the line: the checkpoint stays before the first P
// until the F is read.
func TestFollower_CRIRestartInsidePartialLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	appendText(t, path, fmt.Sprintf("%s stdout F whole seq=1\n%s stdout P first half seq=2 \n", criTime(1), criTime(2)))
	cfg := testConfig(t, dir, "*.log")
	cfg.Format = FormatCRI
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "the whole line", func() bool { return len(r.c.snapshot()) == 1 })
	r.kill()
	if err := cfg.Positions.save(true); err != nil {
		t.Fatal(err)
	}

	appendText(t, path, fmt.Sprintf("%s stdout F second half\n%s stdout F after seq=3\n", criTime(3), criTime(4)))
	cfg2 := testConfig(t, dir, "*.log")
	cfg2.Format = FormatCRI
	r2 := startFollower(t, cfg2)
	waitFor(t, 10*time.Second, "the joined line and the next", func() bool { return len(r2.c.snapshot()) >= 2 })
	r2.stop(t)
	texts := append(r.c.texts(), r2.c.texts()...)
	want := []string{"whole seq=1", "first half seq=2 second half", "after seq=3"}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Fatalf("records %q, want %q", texts, want)
	}
}

// dockerLine is one json-file record, as docker's log driver writes it.
func dockerLine(t *testing.T, log, stream string, n int) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"log": log, "stream": stream, "time": criTime(n)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// Ensure docker json-file records become one record per line: a log
// without its trailing newline (docker splits at 16 KiB) joins the next
// record of the same stream, escapes are decoded, the time and the
// stream come along, and a line that is not a docker record is shipped
// as a plain line.
func TestFollower_DockerJSONFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "abc-json.log")
	big := strings.Repeat("y", 40000) + " seq=2"
	var b strings.Builder
	b.WriteString(dockerLine(t, "hello \"quoted\" \u00e9 seq=1\n", "stdout", 1))
	for i := 0; i < len(big); i += 16384 {
		part := big[i:min(i+16384, len(big))]
		if i+16384 >= len(big) {
			part += "\n"
		}
		b.WriteString(dockerLine(t, part, "stdout", 2))
		if i == 0 {
			b.WriteString(dockerLine(t, "interleaved seq=3\n", "stderr", 3))
		}
	}
	b.WriteString("{\"log\":\"no stream seq=4\\n\",\"time\":\"2026-12-02T10:00:00Z\"}\n")
	b.WriteString(dockerLine(t, "crlf seq=5\r\n", "stderr", 5))
	appendText(t, path, b.String())

	cfg := testConfig(t, dir, "*.log")
	cfg.Format = FormatAuto // decided from the first line
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "5 records", func() bool { return len(r.c.snapshot()) >= 5 })
	r.stop(t)
	got := r.c.snapshot()
	wantText := []string{"hello \"quoted\" é seq=1", "interleaved seq=3", big, `{"log":"no stream seq=4\n","time":"2026-12-02T10:00:00Z"}`, "crlf seq=5"}
	wantStream := []string{"stdout", "stderr", "stdout", "", "stderr"}
	if len(got) != len(wantText) {
		t.Fatalf("%d records, want %d: %.80q", len(got), len(wantText), r.c.texts())
	}
	for i := range got {
		if string(got[i].Text) != wantText[i] || got[i].Stream != wantStream[i] {
			t.Errorf("record %d: %.60q %q, want %.60q %q", i, got[i].Text, got[i].Stream, wantText[i], wantStream[i])
		}
	}
	if !got[2].Time.Equal(time.Date(2026, 12, 2, 10, 0, 2, 2000, time.UTC)) {
		t.Errorf("joined record's time %v, want its first part's", got[2].Time)
	}
	if m := r.f.Stats().Malformed; m != 1 {
		t.Errorf("%d malformed, want 1", m)
	}
}

// kubeletLayout writes n containers' logs as the kubelet lays them out:
// /var/log/pods/<ns>_<pod>_<uid>/<container>/0.log, linked from
// /var/log/containers/<pod>_<ns>_<container>-<id>.log.
func kubeletLayout(t *testing.T, root string, n, linesEach int) (pods, containers string, podDirs []string) {
	t.Helper()
	pods, containers = filepath.Join(root, "pods"), filepath.Join(root, "containers")
	if err := os.MkdirAll(containers, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		pod := fmt.Sprintf("web-%d", i)
		podDir := filepath.Join(pods, fmt.Sprintf("shop_%s_uid-%d", pod, i))
		if err := os.MkdirAll(filepath.Join(podDir, "app"), 0o755); err != nil {
			t.Fatal(err)
		}
		podDirs = append(podDirs, podDir)
		log := filepath.Join(podDir, "app", "0.log")
		appendText(t, log, criLines(i*linesEach+1, (i+1)*linesEach))
		link := filepath.Join(containers, fmt.Sprintf("%s_shop_app-%064d.log", pod, i))
		if err := os.Symlink(log, link); err != nil {
			t.Fatal(err)
		}
	}
	return pods, containers, podDirs
}

// Ensure 1,000 containers in the kubelet's layout, followed through the
// /var/log/containers links with /var/log/pods also matched, are each
// read once; descriptors stay bounded; and when Pods are deleted their
// files are finished, let go and their checkpoints pruned.
func TestFollower_KubeletLayoutThousandContainers(t *testing.T) {
	root := t.TempDir()
	const n, each = 1000, 20
	_, _, podDirs := kubeletLayout(t, root, n, each)
	cfg := criConfig(t, root, "containers/*.log", "pods/*/*/*.log")
	cfg.MaxOpen = 64
	before := openDescriptors(t)
	r := startFollower(t, cfg)
	waitFor(t, 60*time.Second, "every line", func() bool { return len(r.c.snapshot()) >= n*each })
	// Two inotify instances, their eventfds, the positions: a few more
	// than the bound on files.
	if open := openDescriptors(t) - before; open > cfg.MaxOpen+8 {
		t.Errorf("%d descriptors open for 1,000 files, bound %d", open, cfg.MaxOpen)
	}
	// Delete 900 Pods, as the kubelet does when they go.
	for _, d := range podDirs[:900] {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the deleted Pods' checkpoints to be pruned", func() bool { return cfg.Positions.Len() == 100 })
	r.stop(t)
	c := seq.Count(r.c.texts(), n*each)
	t.Logf("1,000 containers, 900 Pods deleted: %s; %d checkpoints left", c, cfg.Positions.Len())
	if c.Missing != 0 || c.Duplicated != 0 {
		t.Fatalf("lost %d, repeated %d: a link and its target must be one file", c.Missing, c.Duplicated)
	}
}

// Ensure the kubelet's rotation under load loses and repeats nothing: the
// runtime writes on, the kubelet renames 0.log to 0.log.<time> and the
// runtime reopens 0.log, then the old file is gzipped and deleted; tailcar
// follows /var/log/containers links.
func TestFollower_KubeletRotationUnderLoad(t *testing.T) {
	root := t.TempDir()
	// The file is empty when tailcar starts: deferred as a possible copy,
	// then started on its first write, it must still see every rename.
	_, _, podDirs := kubeletLayout(t, root, 1, 0)
	log := filepath.Join(podDirs[0], "app", "0.log")
	cfg := criConfig(t, root, "containers/*.log")
	r := startFollower(t, cfg)
	const total, perRotation = 20000, 5000
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var rotated []string
	for n := 1; n <= total; n++ {
		if _, err := f.WriteString(criLines(n, n)); err != nil {
			t.Fatal(err)
		}
		if n%perRotation == 1 && n > 1 {
			// The kubelet rotates a container's log once it reaches 10 MiB,
			// checking every 10 s: never twice before a follower has seen the
			// new file. Wait for the new file's first line to arrive.
			waitFor(t, 30*time.Second, "the new file to be followed", func() bool {
				return seq.Count(r.c.texts(), n).Missing == 0
			})
		}
		if n%perRotation == 0 && n < total {
			// The kubelet: rename and have the runtime reopen; the file
			// rotated before this one is compressed and removed.
			old := fmt.Sprintf("%s.20261202-10%04d", log, n)
			if err := os.Rename(log, old); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if f, err = os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
				t.Fatal(err)
			}
			if len(rotated) > 0 {
				// The kubelet compresses a rotated file at its next rotation,
				// ten seconds and more later: long after any follower has read
				// it. Wait for that here, so that the test is not a race
				// between the compression and a reader slowed by -race.
				before := n - perRotation
				waitFor(t, 30*time.Second, "the rotated file to be read", func() bool {
					return seq.Count(r.c.texts(), before).Missing == 0
				})
				prev := rotated[len(rotated)-1]
				data, err := os.ReadFile(prev)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(prev+".gz", data, 0o644); err != nil { // stands in for gzip
					t.Fatal(err)
				}
				if err := os.Remove(prev); err != nil {
					t.Fatal(err)
				}
			}
			rotated = append(rotated, old)
		}
	}
	f.Close()
	waitFor(t, 30*time.Second, "every line", func() bool { return seq.Count(r.c.texts(), total).Missing == 0 })
	r.stop(t)
	c := seq.Count(r.c.texts(), total)
	t.Logf("kubelet rotation ×%d: %s", total/perRotation-1, c)
	if c.Missing != 0 || c.Duplicated != 0 {
		t.Fatalf("lost %d (first %v), repeated %d", c.Missing, c.FirstMissing(10), c.Duplicated)
	}
}

// undecidedContainer starts a follower on one container whose log is
// empty, so that its decision waits (it may be a copy still being
// written), with no periodic scan to decide it: only the file's own events
// can. It returns the follower and the log's path.
func undecidedContainer(t *testing.T) (*running, string) {
	t.Helper()
	root := t.TempDir()
	_, _, podDirs := kubeletLayout(t, root, 1, 0)
	cfg := criConfig(t, root, "containers/*.log")
	cfg.RescanInterval, cfg.RotateWait = time.Hour, time.Hour
	logs := &syncWriter{}
	cfg.Log = zerolog.New(logs).Level(zerolog.DebugLevel)
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "the empty log's decision to be deferred", func() bool {
		return strings.Contains(logs.String(), "may be a copy still being written")
	})
	return r, filepath.Join(podDirs[0], "app", "0.log")
}

// Ensure a container log reached through a /var/log/containers link, empty
// when found, is decided at its first write: the link's directory hears
// nothing of writes to the target, so the target's own directory must be
// watched.
func TestFollower_UndecidedLinkedFileIsDecidedAtItsFirstWrite(t *testing.T) {
	r, log := undecidedContainer(t)
	appendText(t, log, criLines(1, 3))
	waitFor(t, 10*time.Second, "the first lines", func() bool { return seq.Count(r.c.texts(), 3).Missing == 0 })
	r.stop(t)
	if c := seq.Count(r.c.texts(), 3); c.Missing != 0 || c.Duplicated != 0 {
		t.Fatalf("%s", c)
	}
}

// Ensure a file whose decision waits and that is rotated away meanwhile
// (the kubelet renames a log of a container that wrote fast) is found by
// identity under its new name and read whole, and the new file too.
func TestFollower_UndecidedFileRotatedAwayIsRead(t *testing.T) {
	r, log := undecidedContainer(t)
	if err := os.Rename(log, log+".20261202-100000"); err != nil {
		t.Fatal(err)
	}
	appendText(t, log+".20261202-100000", criLines(1, 500))
	appendText(t, log, criLines(501, 600))
	waitFor(t, 10*time.Second, "every line", func() bool { return seq.Count(r.c.texts(), 600).Missing == 0 })
	r.stop(t)
	c := seq.Count(r.c.texts(), 600)
	t.Logf("rotated before its decision: %s", c)
	if c.Missing != 0 || c.Duplicated != 0 {
		t.Fatalf("lost %d (first %v), repeated %d", c.Missing, c.FirstMissing(10), c.Duplicated)
	}
}

// Ensure a container line whose last chunk never comes (the app printed
// without a newline and exited, and conmon wrote a P) is shipped once
// nothing has followed it for the multiline wait, without waiting for a
// stop.
func TestFollower_CRIPartialLastLineIsShipped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	appendText(t, path, fmt.Sprintf("%s stdout F first seq=1\n%s stdout P last without newline seq=2\n", criTime(1), criTime(2)))
	cfg := testConfig(t, dir, "*.log")
	cfg.Format = FormatCRI
	r := startFollower(t, cfg)
	waitFor(t, 10*time.Second, "the partial last line", func() bool { return len(r.c.snapshot()) == 2 })
	got := r.c.snapshot()
	if string(got[1].Text) != "last without newline seq=2" || got[1].Stream != "stdout" {
		t.Fatalf("last record %q on %q", got[1].Text, got[1].Stream)
	}
	if size := fileSize(t, path); got[1].Ack != size {
		t.Fatalf("ack %d, want the end of the file %d", got[1].Ack, size)
	}
	r.stop(t)
	if n := len(r.c.snapshot()); n != 2 {
		t.Fatalf("%d records after the stop, want 2: the partial line shipped twice", n)
	}
}
