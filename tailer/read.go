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

// file is the state of one followed file generation.
type file struct {
	source uint64
	path   string
	id     fileID
	fp     fingerprint
	f      *os.File // nil while closed for being idle
	// offset is where the next unframed line starts. A line without its
	// newline is not consumed: it is read again, whole, once complete.
	offset int64

	rotated  bool // the pattern no longer leads here: finish, then let go
	dirty    bool // queued for reading
	settling bool // named by an event, read when events have settled
	gone     bool // let go; ignore stale references

	lastGrowth time.Time // last time reading found new bytes
	lastActive time.Time
	// since is when an event first named this file since it was last read
	// to its end; records read now have waited since then.
	since time.Time

	// An overlong line: its head, kept up to the record cap while the rest
	// is read and dropped, so a 100 MiB line costs 1 MiB, not 100.
	long       []byte
	longActive bool
	longCut    bool

	// A multiline record being gathered.
	pending      []byte
	hasPending   bool
	pendingCut   bool
	pendingEnd   int64
	pendingSince time.Time
}

// busy reports whether fl holds a record it has not handed over.
func (fl *file) busy() bool { return fl.longActive || fl.hasPending }

// window reads one file between two offsets with ReadAt, so the shared
// buffered reader can move from file to file without seeking.
type window struct {
	f        *os.File
	off, end int64
}

func (w *window) Read(p []byte) (int, error) {
	if w.off >= w.end {
		return 0, io.EOF
	}
	if rest := w.end - w.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := w.f.ReadAt(p, w.off)
	w.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// readFile reads fl up to its size, or up to limit when limit >= 0, for at
// most readBudget bytes, and hands over the complete lines. With final
// set, a trailing line without newline is handed over too. It reports
// whether there is more to read.
func (f *Follower) readFile(ctx context.Context, fl *file, limit int64, final bool) (bool, error) {
	if fl.f == nil && !f.reopen(fl) {
		return false, nil
	}
	fi, err := fl.f.Stat()
	if err != nil {
		f.cfg.Log.Warn().Err(err).Str("path", fl.path).Msg("cannot stat an open file")
		return false, nil
	}
	size := fi.Size()
	if size != fl.offset {
		same, now, err := checkFingerprint(fl.f, fl.fp, f.scratch)
		if err != nil {
			f.cfg.Log.Warn().Err(err).Str("path", fl.path).Msg("cannot read file head")
			return false, nil
		}
		if !same || size < fl.offset {
			if err := f.truncated(ctx, fl, now); err != nil {
				return false, err
			}
		} else {
			fl.fp = now
		}
	}
	end := size
	if limit >= 0 && limit < end {
		end = limit
	}
	if fl.offset >= end {
		if final && fl.longActive {
			return false, f.flushLong(ctx, fl)
		}
		return false, nil
	}
	stop := min(end, fl.offset+readBudget)
	atEnd := stop == end
	if fl.since.IsZero() {
		fl.since = time.Now()
	}
	if atEnd {
		defer func() { fl.since = time.Time{} }()
	}
	f.win = window{f: fl.f, off: fl.offset, end: stop}
	f.br.Reset(&f.win)
	start := fl.offset
	defer func() {
		if fl.offset > start {
			now := time.Now()
			fl.lastGrowth, fl.lastActive = now, now
			f.bytes.Add(fl.offset - start)
		}
	}()
	for {
		chunk, err := f.br.ReadSlice('\n')
		switch {
		case err == nil:
			fl.offset += int64(len(chunk))
			line := chunk[:len(chunk)-1]
			if fl.longActive {
				fl.gather(line, f.cfg.MaxRecordBytes)
				if err := f.flushLong(ctx, fl); err != nil {
					return false, err
				}
				continue
			}
			if err := f.emit(ctx, fl, line, fl.offset, false); err != nil {
				return false, err
			}
		case errors.Is(err, bufio.ErrBufferFull):
			fl.offset += int64(len(chunk))
			fl.gather(chunk, f.cfg.MaxRecordBytes)
		case err == io.EOF:
			if len(chunk) > 0 && (fl.longActive || final && atEnd) {
				fl.offset += int64(len(chunk))
				if fl.longActive {
					fl.gather(chunk, f.cfg.MaxRecordBytes)
				} else if err := f.emit(ctx, fl, chunk, fl.offset, false); err != nil {
					return false, err
				}
			}
			if final && atEnd && fl.longActive {
				if err := f.flushLong(ctx, fl); err != nil {
					return false, err
				}
			}
			return !atEnd, nil
		default:
			f.cfg.Log.Warn().Err(err).Str("path", fl.path).Msg("read failed")
			return false, nil
		}
	}
}

// truncated starts a new generation of fl from offset 0. The old one is
// remembered so that its copytruncate copy, if the patterns match it,
// resumes where it had been read.
func (f *Follower) truncated(ctx context.Context, fl *file, now fingerprint) error {
	f.truncations.Add(1)
	f.cfg.Log.Info().Str("path", fl.path).Int64("read_to", fl.offset).Msg("file truncated; reading it again from its start")
	if err := f.flushFile(ctx, fl); err != nil {
		return err
	}
	f.retired = append(f.retired, retired{fp: fl.fp, readEnd: fl.offset, at: time.Now()})
	// A copy waiting for this truncation can now be decided.
	f.needScan = true
	f.cfg.Positions.forget(fl.source)
	fl.source, fl.offset, fl.fp = newSource(), 0, now
	f.cfg.Positions.track(entry{source: fl.source, path: fl.path, id: fl.id, fp: fl.fp})
	return nil
}

// gather keeps the head of an overlong line: the record cap plus the
// bytes needed to cut it on a rune boundary. The rest is dropped.
func (fl *file) gather(p []byte, limit int) {
	fl.longActive = true
	room := limit + utf8.UTFMax - len(fl.long)
	if room < len(p) {
		fl.longCut = true
		p = p[:max(room, 0)]
	}
	fl.long = append(fl.long, p...)
}

func (f *Follower) flushLong(ctx context.Context, fl *file) error {
	if !fl.longActive {
		return nil
	}
	err := f.emit(ctx, fl, fl.long, fl.offset, fl.longCut)
	fl.longActive, fl.longCut = false, false
	fl.long = fl.long[:0]
	if cap(fl.long) > readBufferSize {
		fl.long = nil // do not keep a record-sized buffer per file
	}
	return err
}

// emit hands over one line, or gathers it into a multiline record.
func (f *Follower) emit(ctx context.Context, fl *file, text []byte, end int64, cut bool) error {
	if n := len(text); n > 0 && text[n-1] == '\r' {
		text = text[:n-1]
	}
	f.lines.Add(1)
	if f.cfg.Multiline != nil {
		return f.gatherMultiline(ctx, fl, text, end, cut)
	}
	text, shortened := cutUTF8(text, f.cfg.MaxRecordBytes)
	return f.out.Handle(ctx, Line{Source: fl.source, Path: fl.path, End: end, Text: text, Truncated: cut || shortened, Since: f.sinceOf(fl)})
}

func (f *Follower) gatherMultiline(ctx context.Context, fl *file, text []byte, end int64, cut bool) error {
	if fl.hasPending && f.cfg.Multiline.Match(text) {
		if err := f.flushPending(ctx, fl); err != nil {
			return err
		}
	}
	if !fl.hasPending {
		fl.hasPending = true
		f.mlPending++
		fl.pending = fl.pending[:0]
	} else {
		text = append([]byte{'\n'}, text...)
	}
	room := f.cfg.MaxRecordBytes + utf8.UTFMax - len(fl.pending)
	if room < len(text) {
		cut = true
		text = text[:max(room, 0)]
	}
	fl.pending = append(fl.pending, text...)
	fl.pendingCut = fl.pendingCut || cut
	fl.pendingEnd = end
	fl.pendingSince = time.Now()
	return nil
}

func (f *Follower) flushPending(ctx context.Context, fl *file) error {
	if !fl.hasPending {
		return nil
	}
	text, shortened := cutUTF8(fl.pending, f.cfg.MaxRecordBytes)
	err := f.out.Handle(ctx, Line{Source: fl.source, Path: fl.path, End: fl.pendingEnd, Text: text, Truncated: fl.pendingCut || shortened, Since: f.sinceOf(fl)})
	fl.hasPending, fl.pendingCut = false, false
	f.mlPending--
	return err
}

// flushFile hands over every record fl holds back.
func (f *Follower) flushFile(ctx context.Context, fl *file) error {
	if err := f.flushLong(ctx, fl); err != nil {
		return err
	}
	return f.flushPending(ctx, fl)
}

// flushIdleMultiline closes multiline records that no line has followed
// for MultilineWait.
func (f *Follower) flushIdleMultiline(ctx context.Context, now time.Time) error {
	if f.mlPending == 0 {
		return nil
	}
	for _, fl := range f.files {
		if fl.hasPending && now.Sub(fl.pendingSince) >= f.cfg.MultilineWait {
			if err := f.flushPending(ctx, fl); err != nil {
				return err
			}
		}
	}
	return nil
}

// sinceOf is when the records being handed over from fl were learned of.
func (f *Follower) sinceOf(fl *file) time.Time {
	if fl.since.IsZero() {
		return time.Now()
	}
	return fl.since
}

// cutUTF8 cuts s to at most max bytes without splitting a UTF-8 sequence,
// and reports whether it cut anything.
func cutUTF8(s []byte, max int) ([]byte, bool) {
	if len(s) <= max {
		return s, false
	}
	// When s[max] continues a multi-byte rune, step back to that rune's
	// leading byte, at most three bytes; a longer run of continuation
	// bytes is invalid UTF-8 that the encoder replaces anyway.
	cut := max
	for i := max; i > 0 && i > max-utf8.UTFMax && !utf8.RuneStart(s[i]); i-- {
		if s[i-1] >= utf8.RuneSelf && utf8.RuneStart(s[i-1]) {
			cut = i - 1
			break
		}
	}
	return s[:cut], true
}
