package tailer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// savedOffset reads one positions file as it is on disk: its save number
// and the offset of source (-1 when the file or the entry is missing, or
// the file does not parse).
func savedOffset(t *testing.T, path string, source uint64) (seq uint64, offset int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, -1
	}
	var pf struct {
		Seq   uint64     `json:"seq"`
		Files []Position `json:"files"`
	}
	if err := json.Unmarshal(data, &pf); err != nil {
		// The recent file is overwritten in place: a read while it is
		// written can see part of a save. The callers poll.
		return 0, -1
	}
	for _, f := range pf.Files {
		if f.Source == "1" {
			return pf.Seq, f.Offset
		}
	}
	return pf.Seq, -1
}

// loadedOffset is source 1's offset as a restart would load it.
func loadedOffset(t *testing.T, path string, log zerolog.Logger) int64 {
	t.Helper()
	p, err := LoadPositions(path, log)
	if err != nil {
		t.Fatal(err)
	}
	off, ok := p.Offset(1)
	if !ok {
		return -1
	}
	return off
}

// waitSaved polls until path holds offset for source 1.
func waitSaved(t *testing.T, path string, offset int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, off := savedOffset(t, path, 1); off == offset {
			return
		}
		if time.Now().After(deadline) {
			_, off := savedOffset(t, path, 1)
			t.Fatalf("%s holds offset %d; want %d", path, off, offset)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// durable100Recent200 saves source 1 at offset 100 durably, then at 200
// to the recent file alone, and returns the recent file's bytes.
func durable100Recent200(t *testing.T) (path string, p *Positions, recent []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "pos")
	p, err := LoadPositions(path, testLogger(t))
	must(t, err)
	p.track(entry{source: 1, path: "/a"})
	p.Ack(1, 100)
	must(t, p.save(true))
	p.Ack(1, 200)
	must(t, p.save(false))
	recent, err = os.ReadFile(recentPath(path))
	must(t, err)
	return path, p, recent
}

// Ensure saves between durable ones go to the recent file alone, a
// restart loads the newer of the two, and the final save is durable.
func TestPositions_RecentBetweenDurableSaves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pos")
	p, err := LoadPositions(path, testLogger(t))
	must(t, err)
	p.track(entry{source: 1, path: "/a"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 0, time.Hour) }()

	// The first save is durable: there is nothing older to fall back to.
	waitSaved(t, path, 0)
	p.Ack(1, 100)
	waitSaved(t, recentPath(path), 100)
	p.Ack(1, 200)
	waitSaved(t, recentPath(path), 200)
	if seq, off := savedOffset(t, path, 1); off != 0 || seq != 1 {
		t.Errorf("the durable file was written between durable saves: seq %d, offset %d", seq, off)
	}
	if off := loadedOffset(t, path, testLogger(t)); off != 200 {
		t.Errorf("a restart now (a crash of tailcar) loads offset %d; want the recent 200", off)
	}

	p.Ack(1, 300)
	waitSaved(t, recentPath(path), 300)
	cancel()
	must(t, <-done)
	seq, off := savedOffset(t, path, 1)
	recentSeq, _ := savedOffset(t, recentPath(path), 1)
	if off != 300 || seq <= recentSeq {
		t.Errorf("after the stop the durable file holds offset %d at seq %d (recent: seq %d); want 300, newest", off, seq, recentSeq)
	}
	// The recent file is older now: the durable one is loaded.
	if off := loadedOffset(t, path, testLogger(t)); off != 300 {
		t.Errorf("a restart after the stop loads offset %d; want 300", off)
	}
}

// Ensure a power cut's damage to the recent file (it is written without
// fsync) falls back to the durable file: older offsets, so lines are sent
// again and none is lost.
func TestPositions_PowerCutFallsBackToDurable(t *testing.T) {
	path, p, saved := durable100Recent200(t)

	for name, damaged := range map[string][]byte{
		"empty":     {},
		"zeros":     make([]byte, len(saved)),
		"cut short": saved[:len(saved)/2],
	} {
		t.Run(name, func(t *testing.T) {
			must(t, os.WriteFile(recentPath(path), damaged, 0o644))
			var logs bytes.Buffer
			if off := loadedOffset(t, path, zerolog.New(&logs)); off != 100 {
				t.Errorf("loaded offset %d; want the durable 100", off)
			}
			if !strings.Contains(logs.String(), "positions file is corrupt") {
				t.Errorf("the damaged recent file was not reported:\n%s", logs.String())
			}
		})
	}

	// A rename of the recent file that the power cut undid leaves an
	// older recent file than the durable one: the durable one is newer.
	must(t, os.WriteFile(recentPath(path), saved, 0o644))
	p.Ack(1, 300)
	must(t, p.save(true))
	if off := loadedOffset(t, path, testLogger(t)); off != 300 {
		t.Errorf("with an older recent file, loaded offset %d; want the durable 300", off)
	}
}

// Ensure the newest save becomes durable even when no change follows it.
func TestPositions_DurableWithoutFurtherChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pos")
	p, err := LoadPositions(path, testLogger(t))
	must(t, err)
	p.track(entry{source: 1, path: "/a"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 0, 50*time.Millisecond) }()
	waitSaved(t, path, 0)
	p.Ack(1, 100)
	waitSaved(t, path, 100)
	cancel()
	must(t, <-done)
}

// Ensure a recent file that holds the head of one save and the tail of
// another, as a kill or a power cut in the middle of its in-place write
// can leave, is not loaded, even when the mix is valid JSON: the durable
// file is.
func TestPositions_TornRecentFallsBackToDurable(t *testing.T) {
	path, p, older := durable100Recent200(t)
	p.Ack(1, 300)
	must(t, p.save(false))
	newer, err := os.ReadFile(recentPath(path))
	must(t, err)
	// The newer save's head (its seq) with the older one's tail (its
	// offset): valid JSON, and without a checksum it would load 200. Each
	// is cut at its own "offset": the saves' lengths differ by a byte now
	// and then (the sum is a decimal number, and a time drops trailing
	// zeros), so one cut for both would not always give JSON.
	field := []byte(`"offset"`)
	torn := append(append([]byte{}, newer[:bytes.Index(newer, field)]...), older[bytes.Index(older, field):]...)
	if !json.Valid(torn) {
		t.Fatalf("the mix is not valid JSON: %s", torn)
	}
	must(t, os.WriteFile(recentPath(path), torn, 0o644))
	var logs bytes.Buffer
	if off := loadedOffset(t, path, zerolog.New(&logs)); off != 100 {
		t.Errorf("loaded offset %d from a torn recent file; want the durable 100", off)
	}
	if !strings.Contains(logs.String(), "checksum") {
		t.Errorf("the torn recent file was not reported:\n%s", logs.String())
	}
}

// Ensure a save shorter than the one before it, overwriting the recent
// file in place, loads as itself (the rest is padding), and that the file
// is cut back once the padding outgrows the save.
func TestPositions_ShorterRecentSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pos")
	p, err := LoadPositions(path, testLogger(t))
	must(t, err)
	for src := uint64(1); src <= 100; src++ {
		p.track(entry{source: src, path: fmt.Sprintf("/var/log/app/a-%03d.log", src)})
	}
	must(t, p.save(true))
	p.Ack(1, 100)
	must(t, p.save(false))
	long, err := os.Stat(recentPath(path))
	must(t, err)

	p.forget(2)
	p.Ack(1, 200)
	must(t, p.save(false))
	if fi, err := os.Stat(recentPath(path)); err != nil || fi.Size() != long.Size() {
		t.Fatalf("after one entry fewer the recent file is %v bytes (%v); want it padded to %d", fi.Size(), err, long.Size())
	}
	reloaded, err := LoadPositions(path, testLogger(t))
	must(t, err)
	if off, _ := reloaded.Offset(1); off != 200 || reloaded.Len() != 99 {
		t.Errorf("loaded offset %d and %d entries from the padded save; want 200 and 99", off, reloaded.Len())
	}

	for src := uint64(3); src <= 100; src++ {
		p.forget(src)
	}
	p.Ack(1, 300)
	must(t, p.save(false))
	fi, err := os.Stat(recentPath(path))
	must(t, err)
	if fi.Size() >= long.Size()/10 {
		t.Errorf("with 1 entry of 100 left the recent file is still %d bytes (%d with 100)", fi.Size(), long.Size())
	}
	if off := loadedOffset(t, path, testLogger(t)); off != 300 {
		t.Errorf("loaded offset %d after the file was cut back; want 300", off)
	}
}

// Ensure a save writes each entry as encoding/json would write Position,
// whatever the path holds (quotes, control bytes, invalid UTF-8, HTML
// characters), in both files, and that a restart loads every entry back.
func TestPositions_SaveEncodesAsEncodingJSONWould(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pos")
	p, err := LoadPositions(path, testLogger(t))
	must(t, err)
	paths := []string{
		"/var/log/app/plain.log",
		"/var/log/app/q\"uote\\back\nnl\ttab\x01ctl\x7f.log",
		"/var/log/app/bad\xff\xfeutf8.log",
		"/var/log/app/<html>&\u2028\u2029.log",
		"/var/log/app/ünïcødé-日本.log",
	}
	for i, name := range paths {
		p.track(entry{source: uint64(i + 1), path: name, id: fileID{Dev: 1<<64 - 1 - uint64(i), Ino: uint64(i) << 40},
			fp: fingerprint{Len: i * 100, Sum: 1<<63 + uint64(i)}, offset: int64(i) << 33})
	}
	// A rename, as a scan records it, and a time with nanoseconds in
	// another zone.
	p.touch(2, paths[1]+".1", fingerprint{Len: 100, Sum: 1<<63 + 1}, time.Date(2026, 12, 4, 23, 59, 59, 123456789, time.FixedZone("x", 5*3600+1800)))

	// What encoding/json makes of the entries as they are, decoded: the
	// reference each file is held to.
	reference := func() map[string]Position {
		want := make(map[string]Position)
		for _, e := range p.snapshot() {
			pos := Position{Source: strconv.FormatUint(e.source, 16), Path: e.path, Dev: e.id.Dev, Ino: e.id.Ino,
				FPLen: e.fp.Len, FP: strconv.FormatUint(e.fp.Sum, 16), Offset: e.offset, Seen: e.seen.UTC()}
			ref, err := json.Marshal(pos)
			must(t, err)
			var back Position
			must(t, json.Unmarshal(ref, &back))
			want[back.Source] = back
		}
		return want
	}
	wantDurable := reference()
	must(t, p.save(true))
	p.Ack(1, 7)
	wantRecent := reference()
	must(t, p.save(false))

	for name, want := range map[string]map[string]Position{path: wantDurable, recentPath(path): wantRecent} {
		data, err := os.ReadFile(name)
		must(t, err)
		var pf struct {
			Files []json.RawMessage `json:"files"`
		}
		if err := json.Unmarshal(data, &pf); err != nil {
			t.Fatalf("%s is not JSON: %v\n%s", name, err, data)
		}
		got := make(map[string]Position)
		for _, raw := range pf.Files {
			var pos Position
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&pos); err != nil {
				t.Fatalf("%s: entry %s: %v", name, raw, err)
			}
			got[pos.Source] = pos
		}
		if len(got) != len(want) {
			t.Errorf("%s holds %d entries; want %d", name, len(got), len(want))
		}
		for src, w := range want {
			if g := got[src]; g.Path != w.Path || g.Dev != w.Dev || g.Ino != w.Ino || g.FPLen != w.FPLen ||
				g.FP != w.FP || g.Offset != w.Offset || !g.Seen.Equal(w.Seen) {
				t.Errorf("%s: source %s decodes as %+v; encoding/json's decodes as %+v", name, src, g, w)
			}
		}
	}

	reloaded, err := LoadPositions(path, testLogger(t))
	must(t, err)
	for _, e := range reloaded.snapshot() {
		w := wantRecent[strconv.FormatUint(e.source, 16)]
		if e.path != w.Path || e.offset != w.Offset || e.id != (fileID{Dev: w.Dev, Ino: w.Ino}) || !e.seen.Equal(w.Seen) {
			t.Errorf("restart loaded source %x as %q at %d; want %q at %d", e.source, e.path, e.offset, w.Path, w.Offset)
		}
	}
	if reloaded.Len() != len(wantRecent) {
		t.Errorf("restart loaded %d entries; want %d", reloaded.Len(), len(wantRecent))
	}
}

// BenchmarkPositionsSave is one save to the recent file, the one that
// comes with nearly every ack: with one file (a sidecar) and with a
// thousand (a node).
func BenchmarkPositionsSave(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			p, err := LoadPositions(filepath.Join(b.TempDir(), "pos"), zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			for src := uint64(1); src <= uint64(n); src++ {
				p.track(entry{source: src, path: fmt.Sprintf("/var/log/pods/ns_pod-%d_0f3c/app/0.log", src),
					id: fileID{Dev: 2049, Ino: 1 << 20 * src}, fp: fingerprint{Len: 1024, Sum: 1 << 63 * src}})
			}
			b.ReportAllocs()
			var off int64
			for b.Loop() {
				off++
				p.Ack(1, off)
				if err := p.save(false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
