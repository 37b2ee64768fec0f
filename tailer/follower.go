// Package tailer finds the files to follow, reads them line by line
// across rotation, truncation and restarts, and keeps the checkpoints that
// say how far each file has been delivered.
package tailer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Line is one record read from a file.
type Line struct {
	// Source names the file generation the line came from. It survives
	// restarts through the positions file.
	Source uint64
	Path   string
	// End is the offset just past the record: once the record is
	// delivered, reading resumes there.
	End int64
	// Text is the record without its newline. It is valid only until
	// Handle returns.
	Text      []byte
	Truncated bool
	// Since is when tailcar learned the record was there (its file event,
	// or the read when no event said so): a record waits for its batch
	// from then, so letting events settle adds nothing to its latency.
	Since time.Time
}

// Handler takes the records read, in file order. Handle may block, which
// pauses reading: that is how a slow backend holds tailcar back.
// CaughtUp says that every line known of has been handed over and the
// follower is about to wait: what was handed over can leave in this
// wake-up instead of on a timer of its own.
type Handler interface {
	Handle(ctx context.Context, l Line) error
	CaughtUp()
}

// Pulse shows a liveness check that the follow loop is not wedged: Busy
// when it starts a turn, Waiting when it blocks on file events.
type Pulse interface {
	Busy()
	Waiting()
}

// Defaults for the follower's internals, which users have no reason to tune.
const (
	// DefaultRescanInterval is the safety net behind fsnotify: a glob that
	// finds files whose events were missed (overflow, network filesystems).
	DefaultRescanInterval = 2 * time.Second
	// DefaultRotateWait is how long a rotated or deleted file is kept open
	// after its last growth, for an app that still writes to the old file.
	DefaultRotateWait = 5 * time.Second
	// DefaultMultilineWait closes a multiline record when no line has
	// followed it for this long, so the last one is not held forever.
	DefaultMultilineWait = time.Second
	// DefaultMaxOpen bounds open descriptors; idle files beyond it are
	// closed and reopened by identity when they grow.
	DefaultMaxOpen = 256
	// readBufferSize is the line buffer shared by every file. A longer line
	// is gathered up to the record cap, and the rest is skipped unread.
	readBufferSize = 64 << 10
	// readBudget is how much one file may read before the others get a
	// turn, so a busy file does not starve quiet ones.
	readBudget = 1 << 20
	// DefaultSettle is how long file events gather before the files they
	// name are read. An app writing line by line makes an event per line;
	// reading on each costs a wake-up, a stat and a read per line. While
	// the loop waits, the kernel merges repeated events, so 100 lines a
	// second cost a couple of reads, not a hundred. tailcar sets it from
	// TAILCAR_BATCH_WAIT, which records wait in their batch anyway.
	DefaultSettle = 100 * time.Millisecond
	// retiredKeep is how long a truncated generation is remembered to
	// recognise its copytruncate copy appearing after the truncation.
	retiredKeep = 10 * time.Minute
)

// Config configures a Follower.
type Config struct {
	// Patterns are doublestar globs of files to follow.
	Patterns []string
	// Exclude are globs of files never followed: without '/', matched
	// against the base name; with '/', against the whole path.
	Exclude []string
	// StartAtEnd starts files found at start without a checkpoint at
	// their end instead of their beginning.
	StartAtEnd bool
	// MaxRecordBytes cuts longer records.
	MaxRecordBytes int
	// Multiline, when set, matches the first line of a record.
	Multiline *regexp.Regexp
	// Positions holds the checkpoints; files under its path are never
	// followed (positions, temp and heartbeat files).
	Positions *Positions
	Log       zerolog.Logger
	Pulse     Pulse
	// Settle is how long events gather before reading; the others are
	// internal. Zero values mean the defaults above.
	RescanInterval, RotateWait, MultilineWait, Settle time.Duration
	MaxOpen                                           int
}

// Stats counts what the Follower read and saw.
type Stats struct {
	Lines, Bytes, Files int64
	// Rotations seen, by kind: the path now leads to another file
	// (Renamed), to none (Deleted), the file shrank or was rewritten
	// (Truncated), a new file was a copy of one followed (Copied).
	Renamed, Deleted, Truncated, Copied int64
}

// FileState is one followed file as of the last scan.
type FileState struct {
	Path   string
	Source uint64
	Size   int64
}

// Follower finds files and follows them. Run does the work.
type Follower struct {
	cfg    Config
	ignore string // prefix of tailcar's own files

	out      Handler
	files    map[fileID]*file
	byPath   map[string]*file
	dirty    []*file
	settling []*file // named by events, read when the settle timer fires; the timer runs while any are
	open     int
	retired  []retired

	watcher   *fsnotify.Watcher
	watched   map[string]bool
	deferred  map[string]bool // possible copies to decide on their next change
	needScan  bool
	mlPending int

	br      *bufio.Reader
	win     window
	scratch []byte

	lines, bytes, followed                atomic.Int64
	renamed, deleted, truncations, copies atomic.Int64
	// states is what Files returns, replaced at every scan so that a
	// metrics scrape never touches the loop's own state.
	states atomic.Pointer[[]FileState]
}

// retired is a generation ended by truncation, kept so that its
// copytruncate copy resumes where it had been read.
type retired struct {
	fp      fingerprint
	readEnd int64
	at      time.Time
}

// NewFollower returns a Follower; Run starts it.
func NewFollower(cfg Config) *Follower {
	if cfg.RescanInterval <= 0 {
		cfg.RescanInterval = DefaultRescanInterval
	}
	if cfg.RotateWait <= 0 {
		cfg.RotateWait = DefaultRotateWait
	}
	if cfg.MultilineWait <= 0 {
		cfg.MultilineWait = DefaultMultilineWait
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = DefaultMaxOpen
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.Pulse == nil {
		cfg.Pulse = noPulse{}
	}
	ignore, _ := filepath.Abs(cfg.Positions.Path())
	return &Follower{
		cfg:      cfg,
		ignore:   ignore,
		files:    make(map[fileID]*file),
		byPath:   make(map[string]*file),
		watched:  make(map[string]bool),
		deferred: make(map[string]bool),
		br:       bufio.NewReaderSize(nil, readBufferSize),
		scratch:  make([]byte, fingerprintMax),
	}
}

type noPulse struct{}

func (noPulse) Busy()    {}
func (noPulse) Waiting() {}

// Stats returns the counters so far.
func (f *Follower) Stats() Stats {
	return Stats{
		Lines: f.lines.Load(), Bytes: f.bytes.Load(), Files: f.followed.Load(),
		Renamed: f.renamed.Load(), Deleted: f.deleted.Load(), Truncated: f.truncations.Load(), Copied: f.copies.Load(),
	}
}

// Files returns the files followed as of the last scan.
func (f *Follower) Files() []FileState {
	if p := f.states.Load(); p != nil {
		return *p
	}
	return nil
}

// Run follows files and hands their records to out until finish is closed;
// then it stops looking for files, reads every followed file up to the
// size it has at that moment, hands over the trailing partial lines, and
// returns nil. ctx ending aborts at once with its error.
func (f *Follower) Run(ctx context.Context, finish <-chan struct{}, out Handler) error {
	f.out = out
	defer f.closeAll()
	var events <-chan fsnotify.Event
	var watchErrors <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		f.cfg.Log.Warn().Err(err).Msg("no file events; finding changes by polling only")
	} else {
		f.watcher = w
		events, watchErrors = w.Events, w.Errors
		defer w.Close()
	}
	if err := f.scan(ctx, true); err != nil {
		return err
	}
	rescan := time.NewTicker(f.cfg.RescanInterval)
	defer rescan.Stop()
	multiline := time.NewTimer(f.cfg.MultilineWait)
	multiline.Stop()
	multilineArmed := false
	watchFailing := false
	// ready stands in for "more to read": selecting on it does not block,
	// so events, scans and the stop are still seen during a backlog.
	ready := make(chan struct{})
	close(ready)
	settle := time.NewTimer(f.cfg.Settle)
	settle.Stop()
	var settleSince time.Time
	for {
		f.cfg.Pulse.Busy()
		if err := f.readDirty(ctx); err != nil {
			return err
		}
		if f.mlPending > 0 && !multilineArmed {
			multiline.Reset(f.cfg.MultilineWait)
			multilineArmed = true
		}
		var more <-chan struct{}
		if len(f.dirty) > 0 {
			more = ready
		} else {
			f.out.CaughtUp()
		}
		// While events settle, none are taken: fsnotify's reader waits on
		// its channel and the kernel merges the repeated modify events of a
		// file into one, so a line-by-line writer costs no wake-up per line.
		incoming := events
		if len(f.settling) > 0 {
			incoming = nil
		}
		f.cfg.Pulse.Waiting()
		select {
		case <-more:
		case <-finish:
			return f.drain(ctx)
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-incoming: // only while nothing settles
			f.onEvent(ev)
			if len(f.settling) > 0 {
				settle.Reset(f.cfg.Settle)
				settleSince = time.Now()
			}
		case <-settle.C:
			for _, fl := range f.settling {
				if fl.since.IsZero() {
					fl.since = settleSince
				}
				f.markDirty(fl)
			}
			f.settling = f.settling[:0]
		case err := <-watchErrors:
			// An overflow loses events; the scan finds what they would
			// have said.
			if !watchFailing {
				watchFailing = true
				f.cfg.Log.Warn().Err(err).Msg("file events lost; rescanning")
			}
			f.needScan = true
		case <-rescan.C:
			// The scan stats every file, so it also finds growth whose
			// events were missed.
			f.needScan = true
		case <-multiline.C:
			multilineArmed = false
			if err := f.flushIdleMultiline(ctx, time.Now()); err != nil {
				return err
			}
		}
		if f.needScan {
			if err := f.scan(ctx, false); err != nil {
				return err
			}
		}
	}
}

func (f *Follower) onEvent(ev fsnotify.Event) {
	if fl, ok := f.byPath[ev.Name]; ok && !fl.settling {
		fl.settling = true
		f.settling = append(f.settling, fl)
	}
	if f.deferred[ev.Name] {
		f.needScan = true
	}
	if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		f.needScan = true
		if !ev.Has(fsnotify.Create) {
			delete(f.watched, ev.Name)
		}
	}
}

func (f *Follower) markDirty(fl *file) {
	fl.settling = false
	if !fl.dirty {
		fl.dirty = true
		f.dirty = append(f.dirty, fl)
	}
}

// readDirty gives every dirty file one turn of reading.
func (f *Follower) readDirty(ctx context.Context) error {
	batch := f.dirty
	f.dirty = nil
	for _, fl := range batch {
		fl.dirty = false
	}
	for _, fl := range batch {
		if fl.gone {
			continue
		}
		more, err := f.readFile(ctx, fl, -1, false)
		if err != nil {
			return err
		}
		if more {
			f.markDirty(fl)
		} else if f.open > f.cfg.MaxOpen && !fl.rotated && !fl.busy() {
			// Over the bound: the file just read to its end is the one to
			// close; it is reopened by identity when it grows.
			f.closeFile(fl)
		}
	}
	return nil
}

// candidate is a file found by the glob.
type candidate struct {
	path  string
	id    fileID
	size  int64
	mtime time.Time
}

// glob returns the files the patterns match now, by identity.
func (f *Follower) glob() map[fileID]candidate {
	found := make(map[fileID]candidate)
	for _, pattern := range f.cfg.Patterns {
		matches, err := doublestar.FilepathGlob(pattern, doublestar.WithFilesOnly())
		if err != nil {
			f.cfg.Log.Debug().Err(err).Str("pattern", pattern).Msg("glob failed")
			continue
		}
		for _, path := range matches {
			if f.excluded(path) {
				continue
			}
			fi, err := os.Stat(path)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			id, ok := idOf(fi)
			if !ok {
				continue
			}
			// One file under two names (a hard link, or two patterns): keep
			// the name already followed, so the path does not flap.
			if prev, dup := found[id]; dup && (f.byPath[prev.path] != nil || prev.path < path) {
				continue
			}
			found[id] = candidate{path: path, id: id, size: fi.Size(), mtime: fi.ModTime()}
		}
	}
	return found
}

func (f *Follower) excluded(path string) bool {
	if abs, err := filepath.Abs(path); err == nil && strings.HasPrefix(abs, f.ignore) {
		return true
	}
	base := filepath.Base(path)
	for _, pattern := range f.cfg.Exclude {
		target := path
		if !strings.Contains(pattern, "/") {
			target = base
		}
		if ok, _ := doublestar.PathMatch(pattern, target); ok {
			return true
		}
	}
	return false
}

// scan matches the files on disk against the files followed: it notices
// renames, rotations and deletions, starts new files, lets go of finished
// rotated ones, and keeps the watches and checkpoints current.
func (f *Follower) scan(ctx context.Context, initial bool) error {
	f.needScan = false
	now := time.Now()
	found := f.glob()
	clear(f.deferred)

	sizes := make(map[fileID]int64, len(f.files))
	for id, fl := range f.files {
		c, ok := found[id]
		if ok {
			sizes[id] = c.size
			delete(found, id)
			if c.path != fl.path {
				f.cfg.Log.Info().Str("from", fl.path).Str("path", c.path).Msg("file renamed; still followed")
				f.setPath(fl, c.path)
			}
			if fl.rotated {
				fl.rotated = false
				f.byPath[fl.path] = fl
			}
			// A settling file is read when its events have settled; reading
			// it now would split that turn in two, a wake-up and a batch
			// more for nothing.
			if c.size != fl.offset && !fl.settling {
				f.markDirty(fl)
			}
			continue
		}
		if !fl.rotated {
			// The path leads elsewhere or nowhere: keep reading the open
			// descriptor, which may still get lines, then let go.
			fl.rotated = true
			fl.lastGrowth = now
			if f.byPath[fl.path] == fl {
				delete(f.byPath, fl.path)
			}
			if fl.f != nil && linked(fl.f) {
				f.renamed.Add(1)
				from := fl.path
				if name, ok := f.nameOf(fl); ok {
					fl.path = name
				}
				f.cfg.Log.Info().Str("from", from).Str("path", fl.path).Msg("file rotated away; reading it to its end")
			} else {
				f.deleted.Add(1)
				f.cfg.Log.Info().Str("path", fl.path).Msg("file deleted; reading it to its end")
			}
			if fl.f == nil && !f.findMoved(fl) {
				f.letGo(fl, "gone while closed")
				continue
			}
			f.markDirty(fl)
		}
	}

	if len(found) > 0 {
		if err := f.startFiles(ctx, found, initial); err != nil {
			return err
		}
	}
	if initial {
		f.resumeRotatedAway(now)
	}
	if err := f.retireFinished(ctx, now); err != nil {
		return err
	}
	f.closeIdle()

	keep := make(map[uint64]bool, len(f.files))
	states := make([]FileState, 0, len(f.files))
	for id, fl := range f.files {
		keep[fl.source] = true
		f.cfg.Positions.update(fl.source, fl.path, fl.fp, now)
		size, ok := sizes[id]
		if !ok {
			size = fl.offset
			if fl.f != nil {
				if fi, err := fl.f.Stat(); err == nil {
					size = fi.Size()
				}
			}
		}
		states = append(states, FileState{Path: fl.path, Source: fl.source, Size: size})
	}
	f.states.Store(&states)
	f.cfg.Positions.prune(keep, now)
	f.retired = slices.DeleteFunc(f.retired, func(r retired) bool { return now.Sub(r.at) > retiredKeep })
	f.followed.Store(int64(len(f.files)))
	f.watchDirs()
	return nil
}

// startFiles follows files with identities not followed yet, in path
// order so that the log reads the same on every run.
func (f *Follower) startFiles(ctx context.Context, found map[fileID]candidate, initial bool) error {
	byID := make(map[fileID]entry)
	for _, e := range f.cfg.Positions.snapshot() {
		byID[e.id] = e
	}
	paths := make([]candidate, 0, len(found))
	for _, c := range found {
		paths = append(paths, c)
	}
	sort.Slice(paths, func(i, j int) bool { return paths[i].path < paths[j].path })
	for _, c := range paths {
		if err := f.start(ctx, c, initial, byID); err != nil {
			return err
		}
	}
	return nil
}

// start opens a newly found file and decides where to read it from: its
// own checkpoint, the place its original had been read to (a copytruncate
// copy), its end (TAILCAR_START_AT=end, at start only) or its beginning.
func (f *Follower) start(ctx context.Context, c candidate, initial bool, byID map[fileID]entry) error {
	fd, err := os.Open(c.path)
	if err != nil {
		f.cfg.Log.Debug().Err(err).Str("path", c.path).Msg("cannot open")
		return nil
	}
	fi, err := fd.Stat()
	if id, ok := idOf(fi); err != nil || !ok || id != c.id {
		// Replaced between the glob and the open; the next scan sees it.
		fd.Close()
		f.needScan = true
		return nil
	}
	size := fi.Size()
	_, fp, err := checkFingerprint(fd, fingerprint{}, f.scratch)
	if err != nil {
		fd.Close()
		return nil
	}
	fl := &file{path: c.path, id: c.id, f: fd, fp: fp, lastActive: time.Now()}
	f.open++
	how := "new file; reading from its start"

	if e, ok := byID[c.id]; ok {
		same, _, _ := checkFingerprint(fd, e.fp, f.scratch)
		if same && e.offset <= size {
			fl.source, fl.offset = e.source, e.offset
			how = "resuming from checkpoint"
		}
		// Otherwise the inode was reused or truncated while tailcar was
		// down; the old entry stays, to recognise a copy of it.
	}
	if fl.source == 0 {
		offset, origin, isCopy, wait, err := f.copyStart(ctx, fd, c, byID)
		if err != nil || wait {
			fd.Close()
			f.open--
			if wait {
				f.deferred[c.path] = true
				f.cfg.Log.Debug().Str("path", c.path).Msg("may be a copy still being written; deciding on a later scan")
			}
			return err
		}
		switch {
		case isCopy:
			f.copies.Add(1)
			fl.offset = offset
			how = "copy of " + origin + "; resuming where the original had been read"
		case initial && f.cfg.StartAtEnd:
			fl.offset = size
			how = "existing file; starting at its end"
		}
		fl.source = newSource()
		f.cfg.Positions.track(entry{source: fl.source, path: fl.path, id: fl.id, fp: fl.fp, offset: fl.offset})
	}
	f.files[fl.id] = fl
	f.byPath[fl.path] = fl
	f.cfg.Log.Info().Str("path", fl.path).Int64("offset", fl.offset).Msg(how)
	f.markDirty(fl)
	if f.open > f.cfg.MaxOpen {
		f.closeFile(fl) // reopened by identity when its turn to be read comes
	}
	return nil
}

// copyStart tells whether fd, a new file, is a copy of a file known (its
// head matches), and if so from which offset to read it: where the
// original had been read, capped at the copy's size.
//
// While the original is followed and not yet truncated, everything in the
// copy is still in the original, so nothing is read from the copy: it
// waits (wait is true) until the original's truncation retires its
// generation, or until the copy has not changed for RotateWait (a plain
// cp), and then starts past what the original gave. This is what keeps a
// copytruncate copy, created empty and filled while we look, from being
// read again from its start.
func (f *Follower) copyStart(ctx context.Context, fd *os.File, c candidate, byID map[fileID]entry) (offset int64, origin string, isCopy, wait bool, err error) {
	n, err := fd.ReadAt(f.scratch[:fingerprintMax], 0)
	if err != nil && err != io.EOF {
		return 0, "", false, false, fmt.Errorf("read %s: %w", c.path, err)
	}
	head := append([]byte(nil), f.scratch[:n]...)
	settled := time.Since(c.mtime) >= f.cfg.RotateWait
	for _, orig := range f.files {
		// The copy starts as the original does now, or as it did when last
		// read (the original may be truncated already, unknown to us yet).
		if orig.id == c.id || orig.rotated || !f.isPrefixOf(head, orig) && !sameHead(fd, orig.fp, f.scratch) {
			continue
		}
		// Read what the original still has first, so it is not read
		// twice; this is also where its truncation is noticed.
		generation := orig.source
		for {
			more, err := f.readFile(ctx, orig, -1, false)
			if err != nil {
				return 0, "", false, false, err
			}
			if !more {
				break
			}
		}
		if orig.source != generation {
			// Truncated: logrotate had finished the copy before that, so
			// it is complete; resume where the truncated generation ended.
			r := f.retired[len(f.retired)-1]
			return min(r.readEnd, c.size), orig.path, true, false, nil
		}
		if !settled {
			return 0, "", false, true, nil
		}
		if len(head) >= copyMinFingerprint && f.isPrefixOf(head, orig) {
			return min(orig.offset, c.size), orig.path, true, false, nil
		}
	}
	if len(head) == 0 && !settled {
		return 0, "", false, true, nil
	}
	for i := len(f.retired) - 1; i >= 0; i-- {
		if r := f.retired[i]; sameHead(fd, r.fp, f.scratch) {
			return min(r.readEnd, c.size), "a truncated file", true, false, nil
		}
	}
	for _, e := range byID {
		if e.id == c.id || f.files[e.id] != nil || !sameHead(fd, e.fp, f.scratch) {
			continue
		}
		return min(e.offset, c.size), e.path, true, false, nil
	}
	return 0, "", false, false, nil
}

// isPrefixOf reports whether head is how orig starts now.
func (f *Follower) isPrefixOf(head []byte, orig *file) bool {
	if len(head) == 0 || orig.f == nil {
		return false
	}
	buf := f.scratch[:len(head)]
	n, _ := orig.f.ReadAt(buf, 0)
	return n == len(head) && bytes.Equal(buf, head)
}

// resumeRotatedAway finishes files that were followed before a restart and
// rotated away meanwhile: they are found by identity in their directory,
// whatever their new name, and read from their checkpoint to their end.
func (f *Follower) resumeRotatedAway(now time.Time) {
	for _, e := range f.cfg.Positions.snapshot() {
		if f.files[e.id] != nil {
			continue
		}
		fl := &file{source: e.source, path: e.path, id: e.id, fp: e.fp, offset: e.offset, rotated: true, lastGrowth: now}
		if !f.findMoved(fl) {
			continue
		}
		if fi, err := fl.f.Stat(); err != nil || fi.Size() < e.offset {
			f.closeFile(fl)
			continue
		}
		f.files[fl.id] = fl
		f.cfg.Log.Info().Str("path", fl.path).Int64("offset", fl.offset).Msg("finishing a file rotated away while tailcar was down")
		f.markDirty(fl)
	}
}

// findMoved looks for fl by identity in its directory, where rotation
// leaves it, and opens it there. Its name does not matter, excluded or
// not: it is the very file that was being followed.
func (f *Follower) findMoved(fl *file) bool {
	path, ok := f.nameOf(fl)
	if !ok {
		return false
	}
	fd, err := os.Open(path)
	if err != nil {
		return false
	}
	if same, _, _ := checkFingerprint(fd, fl.fp, f.scratch); !same {
		fd.Close()
		return false
	}
	fl.f, fl.path = fd, path
	f.open++
	return true
}

// nameOf finds fl's current name, by identity, in the directory where
// rotation leaves it.
func (f *Follower) nameOf(fl *file) (string, bool) {
	dir := filepath.Dir(fl.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	for _, de := range entries {
		if !de.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, de.Name())
		if fi, err := os.Stat(path); err == nil {
			if id, ok := idOf(fi); ok && id == fl.id {
				return path, true
			}
		}
	}
	return "", false
}

// retireFinished lets go of rotated files that have been read to their end
// and have not grown for RotateWait.
func (f *Follower) retireFinished(ctx context.Context, now time.Time) error {
	for _, fl := range f.files {
		if !fl.rotated || fl.dirty || now.Sub(fl.lastGrowth) < f.cfg.RotateWait {
			continue
		}
		if fl.f != nil {
			fi, err := fl.f.Stat()
			if err == nil && fi.Size() > fl.offset {
				f.markDirty(fl)
				continue
			}
		}
		if err := f.flushFile(ctx, fl); err != nil {
			return err
		}
		f.letGo(fl, "finished")
	}
	return nil
}

// letGo stops following fl. A deleted file's checkpoint is dropped; a
// renamed one's is kept (and pruned later), so that a pattern that starts
// matching it does not read it again.
func (f *Follower) letGo(fl *file, why string) {
	deleted := fl.f == nil || !linked(fl.f)
	f.closeFile(fl)
	fl.gone = true
	delete(f.files, fl.id)
	if f.byPath[fl.path] == fl {
		delete(f.byPath, fl.path)
	}
	if deleted {
		f.cfg.Positions.forget(fl.source)
	}
	f.cfg.Log.Info().Str("path", fl.path).Str("why", why).Msg("file closed")
}

// linked reports whether an open file still has a name.
func linked(fd *os.File) bool {
	fi, err := fd.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 0
}

func (f *Follower) setPath(fl *file, path string) {
	if f.byPath[fl.path] == fl {
		delete(f.byPath, fl.path)
	}
	fl.path = path
	f.byPath[path] = fl
}

// closeIdle closes the least recently active files at their end while
// more than MaxOpen are open. They are reopened, by identity, when they
// grow.
func (f *Follower) closeIdle() {
	if f.open <= f.cfg.MaxOpen {
		return
	}
	var idle []*file
	for _, fl := range f.files {
		if fl.f != nil && !fl.rotated && !fl.dirty && !fl.busy() {
			idle = append(idle, fl)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastActive.Before(idle[j].lastActive) })
	for _, fl := range idle {
		if f.open <= f.cfg.MaxOpen {
			break
		}
		if fi, err := fl.f.Stat(); err != nil || fi.Size() != fl.offset {
			continue
		}
		f.closeFile(fl)
	}
}

// reopen opens a file closed while idle, by path, and checks it is still
// the same file; if the path now leads elsewhere, the file is looked for
// by identity.
func (f *Follower) reopen(fl *file) bool {
	fd, err := os.Open(fl.path)
	if err == nil {
		fi, serr := fd.Stat()
		if id, ok := idOf(fi); serr == nil && ok && id == fl.id {
			fl.f = fd
			f.open++
			return true
		}
		fd.Close()
	}
	f.needScan = true
	return f.findMoved(fl)
}

func (f *Follower) closeFile(fl *file) {
	if fl.f != nil {
		fl.f.Close()
		fl.f = nil
		f.open--
	}
}

func (f *Follower) closeAll() {
	for _, fl := range f.files {
		f.closeFile(fl)
	}
}

// watchDirs watches each directory that holds a followed file or is the
// fixed part of a pattern: one watch per directory, not per file.
func (f *Follower) watchDirs() {
	if f.watcher == nil {
		return
	}
	dirs := make(map[string]bool)
	for _, pattern := range f.cfg.Patterns {
		base, _ := doublestar.SplitPattern(filepath.ToSlash(pattern))
		dirs[filepath.FromSlash(base)] = true
	}
	for _, fl := range f.files {
		if !fl.rotated {
			dirs[filepath.Dir(fl.path)] = true
		}
	}
	for dir := range dirs {
		if f.watched[dir] {
			continue
		}
		if err := f.watcher.Add(dir); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				f.cfg.Log.Debug().Err(err).Str("dir", dir).Msg("cannot watch")
			}
			continue
		}
		f.watched[dir] = true
	}
}

// newSource names a new file generation. Random, not derived from the
// inode, because inodes are reused and truncation starts a new generation
// of the same inode.
func newSource() uint64 {
	for {
		if s := rand.Uint64(); s != 0 {
			return s
		}
	}
}

// drain is the end of Run: read every followed file up to the size it has
// now, hand over what remains, including lines without a newline.
func (f *Follower) drain(ctx context.Context) error {
	limits := make(map[*file]int64, len(f.files))
	for _, fl := range f.files {
		if fl.f == nil && !f.reopen(fl) {
			continue
		}
		fi, err := fl.f.Stat()
		if err != nil {
			return fmt.Errorf("drain %s: %w", fl.path, err)
		}
		limits[fl] = fi.Size()
	}
	for fl, limit := range limits {
		for {
			more, err := f.readFile(ctx, fl, limit, true)
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
		if err := f.flushFile(ctx, fl); err != nil {
			return err
		}
	}
	return nil
}
