package tailer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// collector is a Handler that records every line and acks it at once, as
// a sink that accepts everything would.
type collector struct {
	mu    sync.Mutex
	lines []Line
	pos   *Positions
	// ackUpTo, when positive, stops acking after that many lines, as if
	// the rest were in flight when the process died.
	ackUpTo int
	// sinceCaughtUp counts lines handed over after the last CaughtUp.
	sinceCaughtUp int
	// gate, when set, holds Handle until it is closed; stuck says that
	// a Handle is held.
	gate  chan struct{}
	stuck atomic.Bool
}

// hold makes the next Handle block until release is called, as a sink
// stuck mid-delivery keeps the follow loop.
func (c *collector) hold() (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gate := make(chan struct{})
	c.gate = gate
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.gate = nil
			c.mu.Unlock()
			close(gate)
		})
	}
}

func (c *collector) Handle(_ context.Context, l Line) error {
	c.mu.Lock()
	if gate := c.gate; gate != nil {
		c.mu.Unlock()
		c.stuck.Store(true)
		<-gate
		c.stuck.Store(false)
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	l.Text = append([]byte(nil), l.Text...)
	c.lines = append(c.lines, l)
	c.sinceCaughtUp++
	if c.ackUpTo == 0 || len(c.lines) <= c.ackUpTo {
		c.pos.Ack(l.Source, l.Ack)
	}
	return nil
}

func (c *collector) CaughtUp() {
	c.mu.Lock()
	c.sinceCaughtUp = 0
	c.mu.Unlock()
}

func (c *collector) notCaughtUp() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sinceCaughtUp
}

func (c *collector) snapshot() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Line(nil), c.lines...)
}

func (c *collector) texts() []string {
	var out []string
	for _, l := range c.snapshot() {
		out = append(out, string(l.Text))
	}
	return out
}

// running is a Follower running in the background.
type running struct {
	f      *Follower
	c      *collector
	finish chan struct{}
	cancel context.CancelFunc
	done   chan error
}

func testConfig(t *testing.T, dir string, patterns ...string) Config {
	t.Helper()
	posPath := filepath.Join(dir, ".tailcar-positions")
	pos, err := LoadPositions(posPath, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range patterns {
		patterns[i] = filepath.Join(dir, p)
	}
	return Config{
		Patterns: patterns, MaxRecordBytes: 1 << 20, Positions: pos, Log: testLogger(t),
		Ignore:         []string{posPath, posPath + ".tmp", posPath + ".recent", posPath + ".heartbeat"},
		RescanInterval: 100 * time.Millisecond, RotateWait: 500 * time.Millisecond,
		MultilineWait: 200 * time.Millisecond,
	}
}

func testLoggerTB() zerolog.Logger { return zerolog.Nop() }

func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("TAILCAR_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}

func startFollower(t *testing.T, cfg Config) *running {
	t.Helper()
	return startFollowerAcking(t, cfg, 0)
}

// startFollowerAcking starts a follower whose handler acks only the first
// ackUpTo lines (all when 0), set before the first line can arrive.
func startFollowerAcking(t *testing.T, cfg Config, ackUpTo int) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{
		f: NewFollower(cfg), c: &collector{pos: cfg.Positions, ackUpTo: ackUpTo},
		finish: make(chan struct{}), cancel: cancel, done: make(chan error, 1),
	}
	go func() { r.done <- r.f.Run(ctx, r.finish, r.c) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// stop drains the follower as tailcar does at shutdown and waits for it.
func (r *running) stop(t *testing.T) {
	t.Helper()
	close(r.finish)
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follower did not finish its drain")
	}
}

// kill stops the follower as kill -9 would: no drain, no final save.
func (r *running) kill() {
	r.cancel()
	err := <-r.done
	r.done <- err
}

func waitFor(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func line(n int) string {
	return fmt.Sprintf("10.0.0.%d - - [25/Nov/2026:10:00:00 +0000] \"GET /item?seq=%d HTTP/1.1\" 200 %d", n%250, n, 100+n%900)
}

// writeLines appends numbered lines from..to to w.
func writeLines(t *testing.T, w *os.File, from, to int) {
	t.Helper()
	bw := bufio.NewWriter(w)
	for i := from; i <= to; i++ {
		bw.WriteString(line(i))
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeLines(t, f, from, to)
}

// openAppend opens the file at path (created if need be) as a logging app
// does, closed with the test.
func openAppend(t *testing.T, path string) *os.File {
	t.Helper()
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// fileSize is the size of the file at path.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// requireExactlyOnce fails unless every line 1..written arrived once.
func requireExactlyOnce(t *testing.T, texts []string, written int) {
	t.Helper()
	c := seq.Count(texts, written)
	t.Logf("delivery: %s", c)
	if c.Missing != 0 || c.Duplicated != 0 || c.Received != written {
		t.Fatalf("want every line exactly once; %s; first missing %v", c, c.FirstMissing(20))
	}
}

// waitCount waits until n numbered lines have arrived.
func waitCount(t *testing.T, r *running, n int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d lines", n), func() bool { return seq.Count(r.c.texts(), n).Received >= n })
}

// openWithFingerprint opens the file at path, closed at the test's end,
// with the fingerprint of what it holds now, as the loop opens a file it
// starts following.
func openWithFingerprint(t *testing.T, path string) (*os.File, fingerprint) {
	t.Helper()
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.Close() })
	_, fp, err := checkFingerprint(fd, fingerprint{}, make([]byte, fingerprintMax))
	if err != nil {
		t.Fatal(err)
	}
	return fd, fp
}

// loopOf returns a Follower of pattern in dir, not started, whose records
// go to a collector, and the file at path opened as its loop opens a file.
func loopOf(t *testing.T, dir, pattern, path string) (*Follower, *collector, *file) {
	t.Helper()
	cfg := testConfig(t, dir, pattern)
	f := NewFollower(cfg)
	c := &collector{pos: cfg.Positions}
	f.out = c
	fd, fp := openWithFingerprint(t, path)
	return f, c, &file{path: path, real: path, fd: fd, fp: fp, source: newSource(), id: idOfPath(t, path)}
}

// idOfPath is the identity of the file at path.
func idOfPath(t *testing.T, path string) fileID {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	id, ok := idOf(fi)
	if !ok {
		t.Fatalf("no identity for %s", path)
	}
	return id
}
