package tailer

import (
	"bufio"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Follower finds files and follows them. Run does the work; everything
// but the counters and Files belongs to Run's goroutine.
type Follower struct {
	cfg   Config
	roots []string        // where symlink targets may lie
	own   map[string]bool // tailcar's own files, never followed

	out   Handler
	files map[fileID]*file
	// byReal finds a followed file by the name its directory's events
	// give it.
	byReal map[string]*file
	// queued files are read in the next turn; settling files once their
	// events have settled. A file is in at most one of them.
	queued, settling map[*file]struct{}
	turn             []*file // the files of the current turn, reused
	open             int     // open descriptors; see openFile
	retired          []retired
	// deferred are possible copies still being written, by real path, with
	// the name the glob found; recheck are those that changed since.
	deferred map[string]string
	recheck  []string
	// refused are the paths the last scan did not follow, and why;
	// refusedNow is being gathered by the current scan.
	refused, refusedNow map[string]string
	needScan            bool
	draining            bool

	watch *watches
	// ownOpens counts tailcar's own opens whose events have not come yet:
	// they are not a copier's.
	ownOpens map[string]int
	// polled are files another process opened, polled without waiting
	// for events until they are truncated or pollUntil passes.
	polled []*file
	// eagerUntil is the latest riskUntil of any file: until then, change
	// events are taken as they come.
	eagerUntil time.Time

	br      *bufio.Reader
	win     window
	scratch []byte
	docker  dockerDecoder

	lines, bytes, followed                atomic.Int64
	renamed, deleted, truncations, copies atomic.Int64
	refusals, malformed                   atomic.Int64
	// states is what Files returns, replaced at every scan so that a
	// metrics scrape never touches the loop's own state.
	states atomic.Pointer[[]FileState]
}

// NewFollower returns a Follower; Run starts it.
func NewFollower(cfg Config) *Follower {
	cfg.setDefaults()
	return &Follower{
		cfg:        cfg,
		roots:      rootsOf(cfg.Patterns, cfg.SymlinkRoots),
		own:        ownFiles(cfg.Ignore),
		files:      make(map[fileID]*file),
		byReal:     make(map[string]*file),
		queued:     make(map[*file]struct{}),
		settling:   make(map[*file]struct{}),
		deferred:   make(map[string]string),
		refused:    make(map[string]string),
		refusedNow: make(map[string]string),
		ownOpens:   make(map[string]int),
		br:         bufio.NewReaderSize(nil, readBufferSize),
		scratch:    make([]byte, fingerprintMax),
	}
}

// Stats returns the counters so far.
func (f *Follower) Stats() Stats {
	return Stats{
		Lines: f.lines.Load(), Bytes: f.bytes.Load(), Files: f.followed.Load(),
		Renamed: f.renamed.Load(), Deleted: f.deleted.Load(), Truncated: f.truncations.Load(), Copied: f.copies.Load(),
		Refused: f.refusals.Load(), Malformed: f.malformed.Load(),
	}
}

// Files returns the files followed as of the last scan.
func (f *Follower) Files() []FileState {
	if p := f.states.Load(); p != nil {
		return *p
	}
	return nil
}

// wake is what ended the follow loop's wait.
type wake int

const (
	wakeNothing wake = iota
	wakeMore         // files are queued
	wakeChange       // a file changed
	wakeLayout       // a file was created, moved, deleted or opened
	wakeSettled      // the settle time is over
	wakeRescan
	wakeMultiline
	wakeFinish
)

// Run follows files and hands their records to out until finish is closed;
// then it stops looking for files, reads every followed file up to the
// size it has at that moment, hands over the trailing partial lines, and
// returns nil. ctx ending aborts at once with its error.
func (f *Follower) Run(ctx context.Context, finish <-chan struct{}, out Handler) error {
	f.out = out
	defer f.closeAll()
	var changes, layout <-chan notifyEvent
	if w, err := newWatches(); err != nil {
		f.cfg.Log.Warn().Err(err).Msg("no file events; finding changes by rescanning only")
	} else {
		f.watch = w
		done := make(chan struct{})
		var readers sync.WaitGroup
		readers.Go(func() { w.change.run(done) })
		readers.Go(func() { w.layout.run(done) })
		defer func() {
			close(done)
			w.close()
			readers.Wait()
		}()
		changes, layout = w.change.events, w.layout.events
	}
	f.cfg.Pulse.Busy()
	if err := f.scan(ctx, true); err != nil {
		return err
	}
	rescan := time.NewTicker(f.cfg.RescanInterval)
	defer rescan.Stop()
	settle, multiline := stoppedTimer(), stoppedTimer()
	settleArmed, multilineArmed := false, false
	var settleSince time.Time
	// ready stands in for "more to read": selecting on it does not block,
	// so events, scans and the stop are still seen during a backlog.
	ready := make(chan struct{})
	close(ready)
	for {
		if err := f.readQueued(ctx); err != nil {
			return err
		}
		if !multilineArmed && f.assembling() {
			multiline.Reset(f.cfg.MultilineWait)
			multilineArmed = true
		}
		var more <-chan struct{}
		if f.poll(time.Now()) || len(f.queued) > 0 {
			more = ready
		} else {
			f.out.CaughtUp()
		}
		// While changes settle, none are taken: the reading goroutine waits
		// on its channel and the kernel merges a file's repeated events, so
		// a line-by-line writer costs no wake-up per line. A file at risk
		// of truncation is the exception: its changes are taken as they
		// come.
		incoming := changes
		if settleArmed && !time.Now().Before(f.eagerUntil) {
			incoming = nil
		}
		var ev notifyEvent
		var w wake
		f.cfg.Pulse.Waiting()
		select {
		case <-more:
			w = wakeMore
		case <-finish:
			w = wakeFinish
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-incoming:
			if w, ev = wakeChange, e; !ok {
				changes, w = nil, wakeNothing
				f.cfg.Log.Warn().Msg("file change events ended; finding changes by rescanning only")
			}
		case e, ok := <-layout:
			if w, ev = wakeLayout, e; !ok {
				layout, w = nil, wakeNothing
				f.cfg.Log.Warn().Msg("file layout events ended; finding files by rescanning only")
			}
		case <-settle.C:
			w = wakeSettled
		case <-rescan.C:
			w = wakeRescan
		case <-multiline.C:
			w = wakeMultiline
		}
		// Everything from here to the next wait is one step: a scan or a
		// read that blocks (a file system that hangs) must look stuck.
		f.cfg.Pulse.Busy()
		now := time.Now()
		switch w {
		case wakeFinish:
			return f.drain(ctx)
		case wakeChange:
			if f.onChange(ev, now) && !settleArmed {
				settle.Reset(f.cfg.Settle)
				settleArmed, settleSince = true, now
			}
			if err := f.decideDeferred(ctx); err != nil {
				return err
			}
		case wakeLayout:
			f.onLayout(ev, now)
			// Take the burst that usually follows (logrotate renames the old
			// copies, opens the file, creates the new copy) in this one step:
			// a copier's open must not wait behind a scan per event.
			for more := true; more && layout != nil; {
				select {
				case e, ok := <-layout:
					if !ok {
						layout, more = nil, false
						continue
					}
					f.onLayout(e, now)
				default:
					more = false
				}
			}
		case wakeSettled:
			settleArmed = false
			for fl := range f.settling {
				if fl.since.IsZero() {
					fl.since = settleSince
				}
				f.queue(fl)
			}
		case wakeRescan:
			// The scan stats every file, so it also finds growth whose
			// events were missed.
			f.needScan = true
		case wakeMultiline:
			multilineArmed = false
			if _, err := f.flushIdleRecords(ctx, now); err != nil {
				return err
			}
		}
		if f.needScan {
			// A file at risk of truncation is read before the scan, which
			// takes a while.
			if time.Now().Before(f.eagerUntil) {
				if err := f.readQueued(ctx); err != nil {
					return err
				}
			}
			if err := f.scan(ctx, false); err != nil {
				return err
			}
		}
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// queue puts fl in the next reading turn.
func (f *Follower) queue(fl *file) {
	delete(f.settling, fl)
	f.queued[fl] = struct{}{}
}

// readQueued gives every queued file one turn of reading.
func (f *Follower) readQueued(ctx context.Context) error {
	f.turn = f.turn[:0]
	for fl := range f.queued {
		f.turn = append(f.turn, fl)
	}
	clear(f.queued)
	for _, fl := range f.turn {
		if fl.gone {
			continue
		}
		more, err := f.readFile(ctx, fl, -1, false)
		if err != nil {
			return err
		}
		if more {
			f.queue(fl)
		} else if f.open > f.cfg.MaxOpen && f.closable(fl) {
			// Over the bound: the file just read to its end is the one to
			// close; it is reopened by identity when it changes.
			f.closeFile(fl)
		}
	}
	return nil
}

// closable reports whether fl's descriptor may be closed now.
func (f *Follower) closable(fl *file) bool {
	_, isQueued := f.queued[fl]
	return !isQueued && fl.closable()
}

// assembling reports whether any record (container chunks, a multiline
// record) waits for more lines.
func (f *Follower) assembling() bool {
	for _, fl := range f.files {
		for i := range fl.streams {
			if fl.streams[i].record.active || fl.streams[i].chunks.active {
				return true
			}
		}
	}
	return false
}

// onChange takes a change event; it reports whether a file began to
// settle.
func (f *Follower) onChange(ev notifyEvent, now time.Time) bool {
	if f.overflowOrGone(f.watch.change, ev) {
		return false
	}
	path, ok := f.watch.change.path(ev)
	if !ok {
		return false
	}
	fl := f.byReal[path]
	if fl == nil {
		// A possible copy still being written is decided again when it
		// grows: on its own, not by a whole scan per write of the copy,
		// which would keep the loop from the original at the moment its
		// last lines are about to be truncated away.
		if _, ok := f.deferred[path]; ok && !slices.Contains(f.recheck, path) {
			f.recheck = append(f.recheck, path)
		}
		return false
	}
	if _, isQueued := f.queued[fl]; isQueued {
		return false
	}
	if fl.atRisk(now) {
		f.queue(fl)
		return false
	}
	if _, isSettling := f.settling[fl]; isSettling {
		return false
	}
	f.settling[fl] = struct{}{}
	return true
}

// onLayout takes a layout event: files appearing, moving or going make a
// scan; another process opening a followed file puts it at risk.
func (f *Follower) onLayout(ev notifyEvent, now time.Time) {
	if f.overflowOrGone(f.watch.layout, ev) {
		clear(f.ownOpens) // their events may be among those lost
		return
	}
	path, ok := f.watch.layout.path(ev)
	if !ok || f.isOwn(path) {
		return // tailcar's own positions and heartbeat wake nothing
	}
	if ev.mask&unix.IN_OPEN == 0 {
		f.needScan = true
		return
	}
	// tailcar's own opens are counted out before the file is looked up, so
	// that the count stays right for files not followed yet (a possible
	// copy). If the kernel merged an own open with a copier's that came
	// right after it, the copier goes unnoticed: reading then waits for the
	// batch wait, as it does for any change.
	if f.ownOpens[path] > 0 {
		if f.ownOpens[path]--; f.ownOpens[path] == 0 {
			delete(f.ownOpens, path)
		}
		return
	}
	fl := f.byReal[path]
	if fl == nil || ev.mask&unix.IN_ISDIR != 0 {
		return
	}
	fl.riskUntil = now.Add(f.cfg.RiskWindow)
	if fl.riskUntil.After(f.eagerUntil) {
		f.eagerUntil = fl.riskUntil
	}
	f.queue(fl)
	if now.Sub(fl.changed) > time.Second {
		return
	}
	// Another process opened a file that is being written: perhaps
	// logrotate, which copies it, fsyncs the copy (2 ms and more) and
	// truncates it. A line written meanwhile exists only until the
	// truncation, and a read after its change event can come too late: the
	// file is polled instead, until it is truncated or pollUntil passes. A
	// file nobody writes (an old copy being compressed) loses nothing to a
	// truncation and is not polled.
	if !fl.polling(now) {
		f.cfg.Log.Debug().Str("path", fl.path).Msg("opened by another process; polling it until it is truncated or a while has passed")
		f.polled = append(f.polled, fl)
	}
	fl.pollUntil = now.Add(f.cfg.CopyPoll)
}

// pollPause is the pause between two polls of a file at risk, in
// nanoseconds: short against the 333 µs between lines at 3,000 a second.
const pollPause = 20_000

// poll queues the files being polled and reports whether there are any.
// It yields first, so that the loop's spinning lets the other goroutines
// (the shipper's sender, the event readers) run.
func (f *Follower) poll(now time.Time) bool {
	if len(f.polled) == 0 {
		return false
	}
	f.polled = slices.DeleteFunc(f.polled, func(fl *file) bool { return fl.gone || !fl.polling(now) })
	if len(f.polled) == 0 {
		return false
	}
	// Yield the processor, and the core for a moment: the shipper and the
	// event readers (threads blocked in poll(2)) must get to run.
	runtime.Gosched()
	_ = unix.Nanosleep(&unix.Timespec{Nsec: pollPause}, nil)
	for _, fl := range f.polled {
		f.queue(fl)
	}
	return true
}

// overflowOrGone handles the events that concern the instance rather
// than a file: a queue overflow (events were lost; the scan finds what
// they said) and a watch the kernel dropped (its directory went away).
func (f *Follower) overflowOrGone(in *inotify, ev notifyEvent) bool {
	switch {
	case ev.mask&unix.IN_Q_OVERFLOW != 0:
		f.cfg.Log.Debug().Msg("file events overflowed; rescanning")
		f.needScan = true
		return true
	case ev.mask&unix.IN_IGNORED != 0:
		in.removed(ev.wd)
		f.needScan = true
		return true
	}
	return false
}

// drain is the end of Run: read every followed file up to the size it has
// now, hand over what remains, including lines without a newline.
func (f *Follower) drain(ctx context.Context) error {
	f.draining = true
	if err := f.startDeferred(ctx); err != nil {
		return err
	}
	limits := make(map[*file]int64, len(f.files))
	for _, fl := range f.files {
		if fl.fd == nil && !f.reopen(fl) {
			continue
		}
		fi, err := fl.fd.Stat()
		if err != nil {
			return fmt.Errorf("drain %s: %w", fl.path, err)
		}
		limits[fl] = fi.Size()
	}
	for fl, limit := range limits {
		if err := f.readToEnd(ctx, fl, limit, true); err != nil {
			return err
		}
		if err := f.flushFile(ctx, fl); err != nil {
			return err
		}
	}
	return nil
}

// decideDeferred decides again the possible copies that grew.
func (f *Follower) decideDeferred(ctx context.Context) error {
	if len(f.recheck) == 0 {
		return nil
	}
	found := make(map[fileID]candidate, len(f.recheck))
	for _, real := range f.recheck {
		name, ok := f.deferred[real]
		if !ok {
			continue
		}
		delete(f.deferred, real)
		if c, why := f.admit(name); why == "" && c.path != "" && f.files[c.id] == nil {
			found[c.id] = c
		}
	}
	f.recheck = f.recheck[:0]
	if err := f.startFiles(ctx, found, false); err != nil {
		return err
	}
	for id := range found {
		if f.files[id] != nil {
			// Decided and followed: one scan brings the watches, the
			// checkpoints' paths and the file list of /metrics up to date.
			f.needScan = true
		}
	}
	return nil
}

// startDeferred decides the files found before the drain whose decision
// waited (possible copies), so that none is left unread.
func (f *Follower) startDeferred(ctx context.Context) error {
	if len(f.deferred) == 0 {
		return nil
	}
	found := f.discover()
	for id, c := range found {
		if _, ok := f.deferred[c.real]; !ok || f.files[id] != nil {
			delete(found, id)
		}
	}
	return f.startFiles(ctx, found, false)
}
