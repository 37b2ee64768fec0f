package tailer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"time"
	"unicode/utf8"
)

// window reads one file between two offsets with ReadAt, so the shared
// buffered reader can move from file to file without seeking.
type window struct {
	fd       *os.File
	off, end int64
	// at is when the bytes being framed were read: the records' read
	// time, taken once per buffer rather than once per line.
	at time.Time
	// between, if set, is called before each read (Follower.takeOpens),
	// and between lines when lookEvery has passed since (see lineFramed);
	// looked is when it was last called, framed counts the lines framed.
	between func()
	looked  time.Time
	framed  int
}

const (
	// lookEvery and linesPerLook: while the loop frames a window, it
	// looks for a copier's open at least every lookEvery, checking the
	// clock every linesPerLook lines. A window of 64 KiB took 3.6 ms to
	// frame in a cold first batch (bench/copytruncate.sh, traced), in
	// which logrotate opened, copied and truncated the file unseen. A
	// look is a read(2) of the layout events, about 2 µs; a clock check
	// costs tens of nanoseconds per linesPerLook lines.
	lookEvery    = 200 * time.Microsecond
	linesPerLook = 64
)

// lineFramed counts a line framed from the window and, every
// linesPerLook lines, calls between if lookEvery has passed since it last
// was. It is small enough to be inlined on the per-line path; the clock is
// read in lookIfDue.
func (w *window) lineFramed() {
	if w.framed++; w.framed%linesPerLook == 0 && w.between != nil {
		w.lookIfDue()
	}
}

func (w *window) lookIfDue() {
	if now := time.Now(); now.Sub(w.looked) >= lookEvery {
		w.looked = now
		w.between()
	}
}

func (w *window) Read(p []byte) (int, error) {
	if w.off >= w.end {
		return 0, io.EOF
	}
	w.at = time.Now()
	if w.between != nil {
		w.looked = w.at
		w.between()
	}
	if rest := w.end - w.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := w.fd.ReadAt(p, w.off)
	if err == io.EOF && w.off+int64(n) < w.end {
		// Shorter than its size when the window began: a file only grows
		// until it is truncated, so what this read returned is most likely
		// the next generation's, at offsets the last one's bytes had (a
		// copier truncated it after the loop's look at its head, and the
		// writer wrote again). They are not framed; the next turn finds
		// the truncation, and the copy holds what was not read.
		return 0, errShrank
	}
	w.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// errShrank ends a window whose file got shorter than its size when the
// window began.
var errShrank = errors.New("the file shrank while it was read")

// longLine is a raw line longer than the read buffer: its head is kept up
// to the record cap while the rest is read and dropped, so a 100 MiB line
// costs 1 MiB, not 100.
type longLine struct {
	text   []byte
	active bool
	cut    bool
	start  int64 // where the line begins in the file
}

// gather keeps p while there is room: the record cap plus the bytes
// needed to cut it on a rune boundary.
func (l *longLine) gather(p []byte, limit int, start int64) {
	if !l.active {
		l.active, l.start = true, start
	}
	room := limit + utf8.UTFMax - len(l.text)
	if room < len(p) {
		l.cut = true
		p = p[:max(room, 0)]
	}
	l.text = append(l.text, p...)
}

func (l *longLine) reset() {
	l.active, l.cut = false, false
	l.text = l.text[:0]
	if cap(l.text) > readBufferSize {
		l.text = nil // do not keep a record-sized buffer per file
	}
}

// readFile reads fl up to its size, or up to limit when limit >= 0, for at
// most readBudget bytes, and frames the complete lines. With final set, a
// trailing line without newline is framed too. It reports whether there
// is more to read.
func (f *Follower) readFile(ctx context.Context, fl *file, limit int64, final bool) (bool, error) {
	if fl.fd == nil && !f.reopen(fl) {
		return false, nil
	}
	fi, err := fl.fd.Stat()
	if err != nil {
		f.cfg.Log.Warn().Err(err).Str("path", fl.path).Msg("cannot stat an open file")
		return false, nil
	}
	now := time.Now()
	size := fi.Size()
	if size != fl.size {
		fl.size, fl.changed = size, now
	}
	if size != fl.offset {
		same, head, err := checkFingerprint(fl.fd, fl.fp, f.scratch)
		if err != nil {
			f.cfg.Log.Warn().Err(err).Str("path", fl.path).Msg("cannot read file head")
			return false, nil
		}
		if !same || size < fl.offset {
			gap, err := f.frameRescued(ctx, fl)
			if err != nil {
				return false, err
			}
			if err := f.truncated(ctx, fl, head, gap); err != nil {
				return false, err
			}
		} else {
			fl.setFingerprint(head)
		}
	}
	fl.passSkip(size)
	end := size
	if limit >= 0 && limit < end {
		end = limit
	}
	if fl.skip.to > 0 {
		end = min(end, fl.skip.from) // read up to what was handed over already
	}
	if fl.offset >= end {
		if final && fl.long.active {
			return false, f.flushLong(ctx, fl)
		}
		return false, nil
	}
	stop := min(end, fl.offset+readBudget)
	atEnd := stop == end
	if fl.since.IsZero() {
		fl.since = now
	}
	if atEnd {
		defer func() { fl.since = time.Time{} }()
	}
	f.win = window{fd: fl.fd, off: fl.offset, end: stop, between: f.takeOpensFunc}
	f.br.Reset(&f.win)
	// Records completed outside a read (by a timer, by the drain) take
	// the time of their handing over, not this window's.
	defer func() { f.win.at = time.Time{} }()
	start := fl.offset
	defer func() {
		if fl.offset > start {
			fl.lastActive = time.Now()
			f.bytes.Add(fl.offset - start)
			if fl.guard != nil {
				fl.guard.readTo.Store(fl.offset)
			}
		}
	}()
	more, err := f.frameWindow(ctx, fl, atEnd, final)
	if fl.passSkip(size) && fl.offset < size {
		more = true // the copy goes on past the run skipped
	}
	return more, err
}

// frameWindow frames the lines of f.win, which starts at fl.offset. With
// final and atEnd set, a trailing line without newline is framed too. It
// reports whether there is more to read.
func (f *Follower) frameWindow(ctx context.Context, fl *file, atEnd, final bool) (bool, error) {
	for {
		lineStart := fl.offset
		chunk, err := f.br.ReadSlice('\n')
		switch {
		case err == nil:
			fl.offset += int64(len(chunk))
			raw := chunk[:len(chunk)-1]
			if fl.long.active {
				fl.long.gather(raw, f.cfg.MaxRecordBytes, lineStart)
				if err := f.flushLong(ctx, fl); err != nil {
					return false, err
				}
				continue
			}
			if err := f.frame(ctx, fl, raw, lineStart, fl.offset, false); err != nil {
				return false, err
			}
			f.win.lineFramed()
		case errors.Is(err, bufio.ErrBufferFull):
			fl.offset += int64(len(chunk))
			fl.long.gather(chunk, f.cfg.MaxRecordBytes, lineStart)
		case err == io.EOF:
			if len(chunk) > 0 && (fl.long.active || final && atEnd) {
				fl.offset += int64(len(chunk))
				if fl.long.active {
					fl.long.gather(chunk, f.cfg.MaxRecordBytes, lineStart)
				} else if err := f.frame(ctx, fl, chunk, lineStart, fl.offset, false); err != nil {
					return false, err
				}
			}
			if final && atEnd && fl.long.active {
				if err := f.flushLong(ctx, fl); err != nil {
					return false, err
				}
			}
			return !atEnd, nil
		case errors.Is(err, errShrank):
			// fl.offset is past the last bytes taken from the pieces read
			// before (lines framed, a long line's head gathered): the
			// truncation is handled from there on the next turn.
			return true, nil
		default:
			f.cfg.Log.Warn().Err(err).Str("path", fl.path).Msg("read failed")
			return false, nil
		}
	}
}

// flushLong frames the overlong line gathered so far.
func (f *Follower) flushLong(ctx context.Context, fl *file) error {
	if !fl.long.active {
		return nil
	}
	err := f.frame(ctx, fl, fl.long.text, fl.long.start, fl.offset, fl.long.cut)
	fl.long.reset()
	return err
}

// readToEnd reads fl up to limit (its size when negative), turn after
// turn, framing a trailing line without newline too when final is set.
func (f *Follower) readToEnd(ctx context.Context, fl *file, limit int64, final bool) error {
	for {
		more, err := f.readFile(ctx, fl, limit, final)
		if err != nil || !more {
			return err
		}
	}
}
