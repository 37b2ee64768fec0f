package tailer

import (
	"bufio"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
	// deferred are possible copies still being written, by real path;
	// recheck are those that changed since.
	deferred map[string]candidate
	recheck  []string
	// refused are the paths the last scan did not follow, and why;
	// refusedNow is being gathered by the current scan.
	refused, refusedNow map[string]string
	needScan            bool
	draining            bool
	// baseOnly: every pattern matches only inside its watched base
	// directory (matchesInBaseOnly); unwatched: the last scan could not
	// watch a directory it should have (missing, or out of watches).
	baseOnly, unwatched bool

	watch *watches
	// ownOpens counts tailcar's own opens whose events have not come yet:
	// they are not a copier's.
	ownOpens map[string]int
	// guards lets the layout events' reader start rescues of files at
	// risk of truncation (rescue.go).
	guards *guards
	// eagerUntil is the latest riskUntil of any file: until then, change
	// events are taken as they come.
	eagerUntil time.Time
	// opened is what the layout events' reader calls for an open;
	// takeOpensFunc is f.takeOpens, made once; layoutBuf and takenLayout
	// are takeOpens' (see there).
	opened        func(path string, now time.Time)
	takeOpensFunc func()
	layoutBuf     []byte
	takenLayout   []notifyEvent

	br      *bufio.Reader
	win     window
	scratch []byte
	// prefixSums are copyOf's fingerprint sums of a new file's head.
	prefixSums [fingerprintMax + 1]uint64
	docker     dockerDecoder

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
	f := &Follower{
		cfg:        cfg,
		roots:      rootsOf(cfg.Patterns, cfg.SymlinkRoots),
		baseOnly:   matchesInBaseOnly(cfg.Patterns),
		own:        ownFiles(cfg.Ignore),
		files:      make(map[fileID]*file),
		byReal:     make(map[string]*file),
		queued:     make(map[*file]struct{}),
		settling:   make(map[*file]struct{}),
		deferred:   make(map[string]candidate),
		refused:    make(map[string]string),
		refusedNow: make(map[string]string),
		ownOpens:   make(map[string]int),
		guards:     newGuards(cfg.CopyPoll, cfg.Log),
		br:         bufio.NewReaderSize(nil, readBufferSize),
		scratch:    make([]byte, fingerprintMax),
	}
	f.opened = func(path string, now time.Time) {
		if !f.isOwn(path) {
			f.guards.opened(path, now)
		}
	}
	f.takeOpensFunc = f.takeOpens
	return f
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
	wakeRescueEnded // a file at risk of truncation can be read again
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
		readers.Go(func() { w.change.run(done, nil) })
		// f.own is set once, at construction: the reader may consult it, so
		// that tailcar's own checkpoint writes cost no stat.
		readers.Go(func() { w.layout.run(done, f.opened) })
		defer func() {
			close(done)
			w.close()
			readers.Wait()
			w.release()
		}()
		changes, layout = w.change.events, w.layout.events
	}
	f.cfg.Pulse.Busy()
	// A loop that has returned is in no step: the sender may go on
	// delivering for the whole drain timeout, and must not find this loop
	// reported stuck meanwhile.
	defer f.cfg.Pulse.Waiting()
	if err := f.scan(ctx, true); err != nil {
		return err
	}
	first := f.rescanInterval(changes != nil && layout != nil)
	rescan := time.NewTimer(first)
	defer rescan.Stop()
	rescanDue := time.Now().Add(first)
	var scans scanCost
	settle, multiline := stoppedTimer(), stoppedTimer()
	settleArmed, multilineArmed := false, false
	var settleSince time.Time
	// ready stands in for "more to read": selecting on it does not block,
	// so events, scans and the stop are still seen during a backlog.
	ready := make(chan struct{})
	close(ready)
	asked := false // the change events' reader was asked for more
	for {
		if err := f.readQueued(ctx); err != nil {
			return err
		}
		if !multilineArmed && f.assembling() {
			multiline.Reset(f.cfg.MultilineWait)
			multilineArmed = true
		}
		if len(f.takenLayout) > 0 {
			now := time.Now()
			for _, ev := range f.takenLayout {
				f.onLayout(ev, now)
			}
			f.takenLayout = f.takenLayout[:0]
		}
		var more <-chan struct{}
		if len(f.queued) > 0 {
			more = ready
		} else {
			f.out.CaughtUp()
			if f.needScan && f.guards.running.Load() == 0 {
				more = ready // for layout events takeOpens took
			}
		}
		// While changes settle, none are taken: the reading goroutine waits
		// on its channel and the kernel merges a file's repeated events, so
		// a line-by-line writer costs no wake-up per line. A file at risk
		// of truncation is the exception: its changes are taken as they
		// come.
		incoming := changes
		if settleArmed && !time.Now().Before(f.eagerUntil) || f.guards.running.Load() > 0 {
			// While a rescue runs, the changes wait too: the copy being
			// written makes an event per write, and taking them would
			// keep the processor from the rescue. They are taken when it
			// ends (guards.ended wakes the loop).
			incoming = nil
		}
		if incoming != nil && !asked {
			// Ask the reader for the next events only now: asked earlier,
			// it would wake at the next write to find the loop settling.
			// A request still pending (the reader is handing over a batch)
			// serves as this one.
			select {
			case f.watch.change.demand <- struct{}{}:
			default:
			}
			asked = true
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
			asked = false
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
		case <-f.guards.ended:
			w = wakeRescueEnded
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
			// Take the changes already queued in the same step: with many
			// files, the kernel cannot merge one file's events with
			// another's, and one step per event (or a queue overflow and a
			// rescan of every file) would cost far more. Yielding lets the
			// reading goroutine hand over the next one.
			for range maxChangesPerStep {
				runtime.Gosched()
				e, ok, got := tryReceive(changes)
				if !got {
					break
				}
				if !ok {
					changes = nil
					break
				}
				if f.onChange(e, now) && !settleArmed {
					settle.Reset(f.cfg.Settle)
					settleArmed, settleSince = true, now
				}
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
			// A periodic scan that is due, or nearly, comes in this
			// wake-up rather than in one of its own: an idle tailcar's cost
			// is its wake-ups more than their work. Its timer waits a
			// settle time longer, for when no read comes.
			if !now.Before(rescanDue.Add(-f.cfg.Settle / 2)) {
				f.needScan = true
			}
		case wakeRescan:
			// The scan stats every file, so it also finds growth whose
			// events were missed.
			f.needScan = true
		case wakeRescueEnded:
			for _, fl := range f.guards.takeEnded() {
				if !fl.gone {
					f.queue(fl)
				}
			}
			if err := f.decideDeferred(ctx); err != nil {
				return err
			}
		case wakeMultiline:
			multilineArmed = false
			if _, err := f.flushIdleRecords(ctx, now); err != nil {
				return err
			}
		}
		if f.needScan && f.guards.running.Load() == 0 {
			// A file at risk of truncation is read before the scan, which
			// takes a while.
			if time.Now().Before(f.eagerUntil) {
				if err := f.readQueued(ctx); err != nil {
					return err
				}
			}
			started := time.Now()
			if err := f.scan(ctx, false); err != nil {
				return err
			}
			// Any scan checks everything the periodic one would; the next
			// is due one interval later, or later still when scans are
			// costly (thousands of files on a node).
			next := scans.next(f.rescanInterval(changes != nil && layout != nil), time.Since(started))
			rescan.Reset(next + f.cfg.Settle)
			rescanDue = time.Now().Add(next)
		}
	}
}

// takeOpens reads the layout events the kernel holds, between two pieces
// of a read. The layout events' reader waits in Go's poller, which the
// runtime polls only when it has nothing else to run, or every 10 ms: a
// loop working through a second of lines, with the sender, kept it from
// a copier's open until after the truncation (the open acted on 4–7 ms
// late, in bench/copytruncate.sh's first rotation). An open starts its
// rescue here, which then runs before the loop reads on; the events are
// handled by the loop in its next step.
func (f *Follower) takeOpens() {
	if f.watch == nil {
		return
	}
	if f.layoutBuf == nil {
		f.layoutBuf = make([]byte, 4096)
	}
	n := f.watch.layout.readNow(f.layoutBuf)
	if n <= 0 {
		return
	}
	rescues := f.guards.running.Load()
	f.watch.layout.split(f.layoutBuf[:n], f.opened, func(ev notifyEvent) bool {
		f.takenLayout = append(f.takenLayout, ev)
		return true
	})
	if f.guards.running.Load() > rescues {
		runtime.Gosched() // the rescue's turn: GOMAXPROCS is 1
	}
}

// rescanInterval is how long after a scan the next periodic one is due:
// the quiet interval while file events report every file that can
// appear or change (both instances live, every pattern inside its
// watched base directory, every directory watched) and no file waits for
// a scan (a rotated or deleted file to finish after the rotate wait, a
// possible copy to decide); the short one otherwise.
func (f *Follower) rescanInterval(eventsLive bool) time.Duration {
	if !eventsLive || !f.baseOnly || f.unwatched || len(f.deferred) > 0 {
		return f.cfg.RescanInterval
	}
	for _, fl := range f.files {
		if fl.rotated {
			return f.cfg.RescanInterval
		}
	}
	return f.cfg.QuietRescanInterval
}

// rescanBudget: a periodic scan comes no sooner than this many times what
// a scan costs after the last, so that the safety net takes at most
// 1/rescanBudget of the loop's time.
const rescanBudget = 100

// scanCost remembers how long the last scan took. What a scan costs is
// the shorter of the last two: one slow scan (the machine took the
// processor away, or the disk was slow once) would otherwise push the
// safety net back by a hundred times its length, 30 s for a scan that was
// kept waiting 0.3 s; a cost that is the files' shows in every scan.
type scanCost struct{ last time.Duration }

// next returns how long after a scan that took took the next periodic one
// is due.
func (c *scanCost) next(interval, took time.Duration) time.Duration {
	cost := took
	if c.last > 0 {
		cost = min(cost, c.last)
	}
	c.last = took
	return max(interval, rescanBudget*cost)
}

// maxChangesPerStep bounds the change events one step takes, so that a
// storm of them cannot keep the loop from everything else.
const maxChangesPerStep = 4096

// tryReceive takes an event if one is ready: got says whether one was, ok
// whether the channel is still open.
func tryReceive(c <-chan notifyEvent) (ev notifyEvent, ok, got bool) {
	select {
	case ev, ok = <-c:
		return ev, ok, true
	default:
		return notifyEvent{}, true, false
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
		rescue := f.guards.state(fl)
		if rescue == rescueRunning {
			continue // queued again when it ends (wakeRescueEnded)
		}
		more, err := f.readFile(ctx, fl, -1, false)
		if err != nil {
			return err
		}
		if rescue == rescueEnded {
			// Read past the end of the rescue with no truncation found
			// (which would have taken it): what it kept is read.
			f.guards.drop(fl)
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

// startDeferred decides the files found before the drain whose decision
// waited (possible copies), so that none is left unread.
func (f *Follower) startDeferred(ctx context.Context) error {
	if len(f.deferred) == 0 {
		return nil
	}
	found := f.discover()
	moved := f.movedDeferred(found)
	for id, c := range found {
		if _, ok := f.deferred[c.real]; !ok || f.files[id] != nil {
			delete(found, id)
		}
	}
	if err := f.startFiles(ctx, found, false); err != nil {
		return err
	}
	return f.startFiles(ctx, moved, false)
}
