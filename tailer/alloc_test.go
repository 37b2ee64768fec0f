package tailer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

type discard struct{ lines int }

func (d *discard) Handle(context.Context, Line) error { d.lines++; return nil }
func (d *discard) CaughtUp()                          {}

// readerOver sets up a follower reading path from its start, as readFile
// does, without the loop around it.
func readerOver(tb testing.TB, path string) (*Follower, *file, *discard) {
	tb.Helper()
	pos, err := LoadPositions(filepath.Join(filepath.Dir(path), ".pos"), testLoggerTB())
	if err != nil {
		tb.Fatal(err)
	}
	f := NewFollower(Config{MaxRecordBytes: 1 << 20, Positions: pos, Log: testLoggerTB()})
	fd, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fd.Close() })
	d := &discard{}
	f.out = d
	return f, &file{fd: fd, path: path}, d
}

func writeNumbered(tb testing.TB, path string, n int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		f.WriteString(line(i) + "\n")
	}
	f.Close()
}

func readAll(f *Follower, fl *file) {
	fl.offset = 0
	for {
		more, err := f.readFile(context.Background(), fl, -1, false)
		if err != nil {
			panic(err)
		}
		if !more {
			return
		}
	}
}

// Ensure reading allocates nothing per line: a stat per read turn is all.
func TestFollower_ReadAllocatesNothingPerLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	const lines = 20000
	writeNumbered(t, path, lines)
	f, fl, d := readerOver(t, path)
	readAll(f, fl)
	if d.lines != lines {
		t.Fatalf("read %d lines, want %d", d.lines, lines)
	}
	perRun := testing.AllocsPerRun(5, func() { readAll(f, fl) })
	if perLine := perRun / lines; perLine > 0.01 {
		t.Fatalf("%.0f allocations for %d lines: %.3f per line, want none", perRun, lines, perLine)
	}
}

func BenchmarkFollower_ReadLines(b *testing.B) {
	path := filepath.Join(b.TempDir(), "app.log")
	const lines = 100000
	writeNumbered(b, path, lines)
	fi, _ := os.Stat(path)
	f, fl, _ := readerOver(b, path)
	b.ReportAllocs()
	b.SetBytes(fi.Size())
	for b.Loop() {
		readAll(f, fl)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
