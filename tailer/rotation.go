package tailer

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// scan matches the files on disk against the files followed: it notices
// renames, rotations and deletions, starts new files, lets go of finished
// rotated ones, and keeps the watches and checkpoints current.
func (f *Follower) scan(ctx context.Context, initial bool) error {
	f.needScan = false
	now := time.Now()
	found := f.discover()
	moved := f.movedDeferred(found)
	clear(f.deferred)

	sizes := make(map[fileID]int64, len(f.files))
	for id, fl := range f.files {
		c, ok := found[id]
		if ok {
			sizes[id] = c.size
			delete(found, id)
			f.stillMatched(fl, c)
			continue
		}
		if !fl.rotated {
			if f.rotatedAway(fl, now) {
				continue
			}
		}
	}

	if len(found) > 0 {
		if err := f.startFiles(ctx, found, initial); err != nil {
			return err
		}
	}
	if err := f.startMoved(ctx, moved, now); err != nil {
		return err
	}
	if initial {
		f.resumeRotatedAway(now)
	}
	if err := f.finishRotated(ctx, now); err != nil {
		return err
	}
	f.closeIdle()
	f.noteRefusals()

	keep := make(map[uint64]bool, len(f.files))
	states := make([]FileState, 0, len(f.files))
	for id, fl := range f.files {
		keep[fl.source] = true
		f.cfg.Positions.touch(fl.source, fl.path, fl.fp, now)
		size, ok := sizes[id]
		if !ok {
			size = fl.size
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

// stillMatched updates a followed file the patterns still match: its name
// may have changed, and it may have grown without an event saying so.
func (f *Follower) stillMatched(fl *file, c candidate) {
	if c.path != fl.path || c.real != fl.real {
		if c.path != fl.path {
			f.cfg.Log.Info().Str("from", fl.path).Str("path", c.path).Msg("file renamed; still followed")
		}
		f.rename(fl, c.path, c.real)
	}
	if fl.rotated {
		fl.rotated = false
		f.byReal[fl.real] = fl
	}
	// A settling file is read when its events have settled; reading it now
	// would split that turn in two, a wake-up and a batch more for nothing.
	if _, isSettling := f.settling[fl]; c.size != fl.offset && !isSettling {
		f.queue(fl)
	}
}

// rotatedAway handles a followed file the patterns no longer find: its
// name leads elsewhere or nowhere. Its open descriptor is read to its
// end, as the app may still write to it, and then it is let go. It
// reports whether fl was let go at once.
func (f *Follower) rotatedAway(fl *file, now time.Time) bool {
	fl.rotated = true
	fl.changed = now
	if f.byReal[fl.real] == fl {
		delete(f.byReal, fl.real)
	}
	if fl.fd != nil && linked(fl.fd) {
		f.renamed.Add(1)
		from := fl.path
		if name, ok := f.nameOf(fl); ok {
			fl.path, fl.real = name, name
		}
		f.cfg.Log.Info().Str("from", from).Str("path", fl.path).Msg("file rotated away; reading it to its end")
	} else {
		f.deleted.Add(1)
		f.cfg.Log.Info().Str("path", fl.path).Msg("file deleted; reading it to its end")
	}
	if fl.fd == nil && !f.findMoved(fl) {
		f.letGo(fl, "gone while closed")
		return true
	}
	f.queue(fl)
	return false
}

// finishRotated lets go of rotated files that have not changed size for
// RotateWait: they are read to their end, a last line without newline
// included, since a file that nobody writes can no longer complete it.
func (f *Follower) finishRotated(ctx context.Context, now time.Time) error {
	for _, fl := range f.files {
		if _, isQueued := f.queued[fl]; !fl.rotated || isQueued {
			continue
		}
		if fl.fd != nil {
			if fi, err := fl.fd.Stat(); err == nil && fi.Size() != fl.size {
				fl.size, fl.changed = fi.Size(), now
			}
		}
		if now.Sub(fl.changed) < f.cfg.RotateWait {
			if fl.size > fl.offset {
				f.queue(fl)
			}
			continue
		}
		if fl.fd != nil {
			if err := f.readToEnd(ctx, fl, fl.size, true); err != nil {
				return err
			}
		}
		if err := f.flushFile(ctx, fl); err != nil {
			return err
		}
		f.letGo(fl, "finished")
	}
	return nil
}

// truncated starts a new generation of fl from offset 0. The old one is
// remembered so that its copytruncate copy, if the patterns match it,
// resumes where it had been read, reading what gap says no read reached.
func (f *Follower) truncated(ctx context.Context, fl *file, now fingerprint, gap unread) error {
	f.truncations.Add(1)
	f.cfg.Log.Info().Str("path", fl.path).Int64("read_to", fl.offset).Msg("file truncated; reading it again from its start")
	if err := f.flushFile(ctx, fl); err != nil {
		return err
	}
	f.retired = append(f.retired, retired{fp: fl.fp, readEnd: fl.offset, gap: gap, at: time.Now()})
	// A copy waiting for this truncation can now be decided, and the risk
	// of losing lines to it is over.
	f.needScan = true
	fl.riskUntil = time.Time{}
	f.cfg.Positions.forget(fl.source)
	fl.source, fl.offset = newSource(), 0
	fl.setFingerprint(now)
	if fl.guard != nil {
		fl.guard.readTo.Store(0)
	}
	if fl.format != f.cfg.Format {
		fl.format = f.cfg.Format // a new generation decides its format anew
	}
	f.cfg.Positions.track(entry{source: fl.source, path: fl.path, id: fl.id, fp: fl.fp})
	return nil
}

// letGo stops following fl. A deleted file's checkpoint is dropped; a
// renamed one's is kept (and pruned later), so that a pattern that starts
// matching it does not read it again.
func (f *Follower) letGo(fl *file, why string) {
	deleted := fl.fd == nil || !linked(fl.fd)
	f.closeFile(fl)
	fl.gone = true
	delete(f.files, fl.id)
	delete(f.queued, fl)
	delete(f.settling, fl)
	if f.byReal[fl.real] == fl {
		delete(f.byReal, fl.real)
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

// rename gives fl a new name.
func (f *Follower) rename(fl *file, path, real string) {
	if f.byReal[fl.real] == fl {
		delete(f.byReal, fl.real)
	}
	fl.path, fl.real = path, real
	f.byReal[real] = fl
}

// watchDirs watches each directory that holds a followed file or is the
// fixed part of a pattern: one watch per directory, not per file.
func (f *Follower) watchDirs() {
	if f.watch == nil {
		return
	}
	dirs := make(map[string]bool)
	for _, pattern := range f.cfg.Patterns {
		base, _ := doublestar.SplitPattern(filepath.ToSlash(pattern))
		dirs[filepath.FromSlash(base)] = true
	}
	for _, fl := range f.files {
		if !fl.rotated {
			dirs[filepath.Dir(fl.real)] = true
		}
	}
	// A possible copy is decided at its next write, which only a watch on
	// its own directory reports (a link's directory hears nothing).
	for real := range f.deferred {
		dirs[filepath.Dir(real)] = true
	}
	f.unwatched = false
	for dir := range dirs {
		if err := f.watch.add(dir); err != nil {
			f.unwatched = true
			if !errors.Is(err, fs.ErrNotExist) {
				f.cfg.Log.Debug().Err(err).Str("dir", dir).Msg("cannot watch")
			}
		}
	}
}
