package tailer

import (
	"os"
	"time"
)

// file is one followed file generation: a file identity with the offset
// reading has reached, and the records being assembled from it. Only the
// follow loop's goroutine touches it.
type file struct {
	source uint64
	// path is the name the file is followed under (a symlink's own name);
	// real is that path with symlinks resolved, the name its directory's
	// events give it.
	path, real string
	id         fileID
	fp         fingerprint
	// lead is the generation's first leadLen bytes, once read (leadOf is
	// the source they belong to): a new file that does not start so cannot
	// be its copy, and is told apart without reading this file again.
	lead   [leadLen]byte
	leadOf uint64
	fd     *os.File // nil while closed for being idle
	// offset is where the next raw line starts. A line without its
	// newline is not consumed: it is read again, whole, once complete.
	offset int64
	// format is Config.Format, with FormatAuto decided at the first line.
	format Format
	// skip, when set, is a run of a copy already handed over from its
	// original (copies.go): reading stops at its start and goes on from
	// its end.
	skip unread

	rotated bool // the patterns no longer lead here: finish, then let go
	gone    bool // let go; stale references ignore it
	// riskUntil: another process opened the file (a copier, perhaps about
	// to truncate it), so it is read at each change until then.
	riskUntil time.Time
	// guard is the file's entry among the guards while it is open.
	guard *guard

	// size is the size last seen and changed when it last changed: a
	// rotated file that has not changed for RotateWait can grow no more.
	size    int64
	changed time.Time
	// lastActive orders idle files for closing, least recent first.
	lastActive time.Time
	// since is when an event first named this file since it was last read
	// to its end; records read now have waited since then.
	since time.Time

	long    longLine
	streams [streamCount]streamState
}

// holding reports whether fl holds raw bytes or a record it has not
// handed over: such a file must be neither closed nor forgotten.
func (fl *file) holding() bool {
	if fl.long.active {
		return true
	}
	for i := range fl.streams {
		if fl.streams[i].chunks.active || fl.streams[i].record.active {
			return true
		}
	}
	return false
}

// closable reports whether fl's descriptor may be closed to stay under
// the bound: not a rotated file (its name may be gone, so it could not be
// reopened), not one holding a record. Whether it is queued for reading
// is the follow loop's to say (Follower.closable).
func (fl *file) closable() bool {
	return fl.fd != nil && !fl.rotated && !fl.holding()
}

// atRisk reports whether fl is to be read at each change.
func (fl *file) atRisk(now time.Time) bool { return now.Before(fl.riskUntil) }

// setFingerprint records the head of the generation being read, for the
// guard too: a copier's open seen after the truncation is told by it.
func (fl *file) setFingerprint(fp fingerprint) {
	if fp == fl.fp {
		return
	}
	fl.fp = fp
	if fl.guard != nil {
		fl.guard.fp.Store(&fp)
	}
}

// passSkip moves the offset past the skipped run once reading reaches
// it; the file is size bytes long. It reports whether it did.
func (fl *file) passSkip(size int64) bool {
	if fl.skip.to == 0 || fl.offset < fl.skip.from {
		return false
	}
	fl.offset = max(fl.offset, min(fl.skip.to, size))
	fl.skip = unread{}
	return true
}
