package tailer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// savedOffset reads one positions file as it is on disk: its save number
// and the offset of source (-1 when the file or the entry is missing).
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
		t.Fatalf("%s: %v", path, err)
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
	path := filepath.Join(t.TempDir(), "pos")
	p, err := LoadPositions(path, testLogger(t))
	must(t, err)
	p.track(entry{source: 1, path: "/a"})
	p.Ack(1, 100)
	must(t, p.save(true))
	p.Ack(1, 200)
	must(t, p.save(false))
	saved, err := os.ReadFile(recentPath(path))
	must(t, err)

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
