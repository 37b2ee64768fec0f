package tailer

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// startFiles follows files with identities not followed yet, in path
// order so that the log reads the same on every run.
func (f *Follower) startFiles(ctx context.Context, found map[fileID]candidate, initial bool) error {
	entries := f.cfg.Positions.snapshot()
	byID := make(map[fileID]entry, len(entries))
	pathsKnown := make(map[string]bool, len(entries))
	for _, e := range entries {
		byID[e.id] = e
		pathsKnown[e.path] = true
	}
	cands := make([]candidate, 0, len(found))
	for _, c := range found {
		cands = append(cands, c)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].path < cands[j].path })
	for _, c := range cands {
		// TAILCAR_START_AT=end is for files that tailcar has never followed:
		// neither this file nor its name has a checkpoint. A file that
		// replaced a followed one under its name, or that reuses its inode,
		// is new, and read from its start.
		_, idKnown := byID[c.id]
		startAtEnd := initial && f.cfg.StartAtEnd && !idKnown && !pathsKnown[c.path]
		if err := f.start(ctx, c, startAtEnd, byID, entries); err != nil {
			return err
		}
	}
	return nil
}

// start opens a newly found file and decides where to read it from: its
// own checkpoint, the place its original had been read to (a copytruncate
// copy), its end (TAILCAR_START_AT=end) or its beginning.
func (f *Follower) start(ctx context.Context, c candidate, startAtEnd bool, byID map[fileID]entry, entries []entry) error {
	fl := &file{path: c.path, real: c.real, id: c.id, format: f.cfg.Format, lastActive: time.Now()}
	fi, err := f.openFile(fl, c.real)
	if err != nil {
		if os.IsPermission(err) {
			f.refuse(c.path, "cannot open: "+err.Error())
		}
		// Otherwise replaced or gone between the glob and the open; the
		// next scan sees what is there now.
		f.needScan = true
		return nil
	}
	fl.size, fl.changed = fi.Size(), time.Now()
	_, head, err := checkFingerprint(fl.fd, fingerprint{}, f.scratch)
	fl.setFingerprint(head)
	if err != nil {
		f.closeFile(fl)
		return nil
	}
	how := "new file; reading from its start"
	if e, ok := byID[c.id]; ok {
		if same, _, _ := checkFingerprint(fl.fd, e.fp, f.scratch); same && e.offset <= fl.size {
			fl.source, fl.offset = e.source, e.offset
			how = "resuming from checkpoint"
		}
		// Otherwise the inode was reused or truncated while tailcar was
		// down; the old entry stays, to recognise a copy of it.
	}
	if fl.source == 0 {
		d, err := f.copyOf(ctx, fl.fd, c, entries)
		if err != nil || d.wait {
			f.closeFile(fl)
			if d.wait {
				f.deferred[c.real] = c
				f.cfg.Log.Debug().Str("path", c.path).Msg("may be a copy still being written; deciding on a later scan")
			}
			return err
		}
		switch {
		case d.resume:
			f.copies.Add(1)
			fl.offset, fl.skip = d.offset, d.skip
			how = "copy of " + d.origin + ", truncated since; resuming where the original had been read"
			if d.lost > 0 {
				f.cfg.Log.Warn().Str("path", c.path).Int64("bytes", d.lost).
					Msg("the copy ends before what the truncation wiped unread; those bytes are lost")
			}
		case startAtEnd:
			fl.offset = fl.size
			how = "existing file; starting at its end"
		}
		fl.source = newSource()
		f.cfg.Positions.track(entry{source: fl.source, path: fl.path, id: fl.id, fp: fl.fp, offset: fl.offset, skip: fl.skip})
	}
	f.files[fl.id] = fl
	f.byReal[fl.real] = fl
	f.cfg.Log.Info().Str("path", fl.path).Int64("offset", fl.offset).Msg(how)
	f.queue(fl)
	if f.open > f.cfg.MaxOpen {
		f.closeFile(fl) // reopened by identity when its turn to be read comes
	}
	return nil
}

// resumeRotatedAway finishes files that were followed before a restart and
// rotated away meanwhile: they are found by identity in their directory,
// whatever their new name, and read from their checkpoint to their end.
func (f *Follower) resumeRotatedAway(now time.Time) {
	for _, e := range f.cfg.Positions.snapshot() {
		if f.files[e.id] != nil {
			continue
		}
		fl := &file{source: e.source, path: e.path, real: e.path, id: e.id, fp: e.fp, offset: e.offset,
			format: f.cfg.Format, rotated: true, changed: now}
		if !f.findMoved(fl) {
			continue
		}
		fi, err := fl.fd.Stat()
		if err != nil || fi.Size() < e.offset {
			f.closeFile(fl)
			continue
		}
		fl.size = fi.Size()
		f.files[fl.id] = fl
		f.cfg.Log.Info().Str("path", fl.path).Int64("offset", fl.offset).Msg("finishing a file rotated away while tailcar was down")
		f.queue(fl)
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
	if _, err := f.openFile(fl, path); err != nil {
		return false
	}
	if same, _, _ := checkFingerprint(fl.fd, fl.fp, f.scratch); !same {
		f.closeFile(fl)
		return false
	}
	fl.path, fl.real = path, path
	return true
}

// nameOf finds fl's current name, by identity, in the directory where
// rotation leaves it.
func (f *Follower) nameOf(fl *file) (string, bool) { return nameByID(filepath.Dir(fl.real), fl.id) }

// movedDeferred returns the possible copies whose decision waited and
// that the patterns no longer find: renamed (the kubelet may rotate a
// container's log before its first lines are read) or replaced. Each is
// found by identity in its directory, under its new name.
func (f *Follower) movedDeferred(found map[fileID]candidate) map[fileID]candidate {
	moved := make(map[fileID]candidate)
	for _, d := range f.deferred {
		if _, ok := found[d.id]; ok || f.files[d.id] != nil {
			continue
		}
		name, ok := nameByID(filepath.Dir(d.real), d.id)
		if !ok {
			continue // deleted before it was decided
		}
		if c, why := f.admit(name); why == "" && c.id == d.id {
			moved[c.id] = c
		}
	}
	return moved
}

// startMoved follows the possible copies that moved away while their
// decision waited, as files rotated away: read to their end and let go.
func (f *Follower) startMoved(ctx context.Context, moved map[fileID]candidate, now time.Time) error {
	if len(moved) == 0 {
		return nil
	}
	if err := f.startFiles(ctx, moved, false); err != nil {
		return err
	}
	for id := range moved {
		if fl := f.files[id]; fl != nil {
			f.rotatedAway(fl, now)
		}
	}
	return nil
}

// nameByID finds the file with identity id in dir.
func nameByID(dir string, id fileID) (string, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	for _, de := range entries {
		if !de.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, de.Name())
		if fi, err := os.Lstat(path); err == nil {
			if got, ok := idOf(fi); ok && got == id {
				return path, true
			}
		}
	}
	return "", false
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
