package tailer

import (
	"context"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// The follow loop's reactions to file events: a change to settle or to
// read at once, a layout change to scan for, another process's open that
// puts a file at risk of truncation.

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
	// Perhaps logrotate, which copies the file, fsyncs the copy (2 ms and
	// more) and truncates it: a line written meanwhile exists only until
	// the truncation, and a read after its change event can come too late.
	// The events' reader has started a rescue already if the file is being
	// written (rescue.go); until riskUntil, its changes are also read as
	// they come, which is what remains when a rescue could not be started.
	fl.riskUntil = now.Add(f.cfg.RiskWindow)
	if fl.riskUntil.After(f.eagerUntil) {
		f.eagerUntil = fl.riskUntil
	}
	f.queue(fl)
	f.cfg.Log.Debug().Str("path", fl.path).Msg("opened by another process; at risk of truncation")
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

// decideDeferred decides again the possible copies that grew.
func (f *Follower) decideDeferred(ctx context.Context) error {
	if len(f.recheck) == 0 || f.guards.running.Load() > 0 {
		return nil // decided when no rescue runs (see guards.running)
	}
	found := make(map[fileID]candidate, len(f.recheck))
	for _, real := range f.recheck {
		d, ok := f.deferred[real]
		if !ok {
			continue
		}
		c, why := f.admit(d.path)
		if why != "" || c.id != d.id {
			// Its name is gone or leads to another file now: the scan
			// looks for it by identity (movedDeferred).
			f.needScan = true
			continue
		}
		delete(f.deferred, real)
		if f.files[c.id] == nil {
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
