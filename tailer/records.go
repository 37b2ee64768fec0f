package tailer

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/tailcar/tailcar/enrich"
)

// Streams of a container log; plain lines are all of streamNone.
const (
	streamNone = iota
	streamStdout
	streamStderr
	streamCount
)

var streamNames = [streamCount]string{"", "stdout", "stderr"}

// pending is a record being assembled from several raw lines: container
// chunks (a CRI P…F run, docker's split lines) or a multiline record.
type pending struct {
	text   []byte
	active bool
	cut    bool
	start  int64     // where its first raw line begins in the file
	end    int64     // where its last raw line ends
	time   time.Time // the runtime's time of its first chunk
	at     time.Time // when it last grew, for MultilineWait
}

func (p *pending) begin(start int64, t time.Time) {
	p.active, p.cut, p.start, p.time = true, false, start, t
	p.text = enrich.Sized(p.text, len(p.text)) // sized by the record before
}

// add appends b while there is room for the record cap plus the bytes
// needed to cut it on a rune boundary; the rest is dropped, not held.
func (p *pending) add(b []byte, limit int, cut bool) {
	room := limit + utf8.UTFMax - len(p.text)
	if room < len(b) {
		cut = true
		b = b[:max(room, 0)]
	}
	p.text = append(p.text, b...)
	p.cut = p.cut || cut
}

// take ends the record and returns its text, valid until the next begin.
func (p *pending) take() ([]byte, bool) {
	p.active = false
	return p.text, p.cut
}

// streamState is what one stream of a file has in assembly.
type streamState struct {
	chunks pending // container chunks joined into one line
	record pending // lines joined into a multiline record
}

// frame turns one raw line of fl, spanning [start, end) in the file and
// without its newline, into records: the container format is decoded,
// chunks are joined, then multiline records. Bytes are joined before any
// UTF-8 is decoded, since a split can cut a character in two.
func (f *Follower) frame(ctx context.Context, fl *file, raw []byte, start, end int64, cut bool) error {
	if n := len(raw); n > 0 && raw[n-1] == '\r' {
		raw = raw[:n-1]
	}
	f.lines.Add(1)
	if fl.format == FormatAuto {
		fl.format = f.detectFormat(raw)
	}
	var c chunk
	var ok bool
	switch fl.format {
	case FormatLines:
		return f.assemble(ctx, fl, streamNone, raw, start, end, time.Time{}, cut, false)
	case FormatCRI:
		c, ok = parseCRI(raw)
	case FormatDocker:
		c, ok = f.docker.parse(raw)
	}
	if !ok {
		f.malformed.Add(1)
		return f.emit(ctx, fl, streamNone, raw, end, time.Time{}, cut, true)
	}
	return f.join(ctx, fl, c, start, end, cut)
}

// join gathers the chunks of one stream until the last one, then passes
// the whole line on. A line in a single chunk is passed on without a copy.
func (f *Follower) join(ctx context.Context, fl *file, c chunk, start, end int64, cut bool) error {
	p := &fl.streams[c.stream].chunks
	if !p.active && !c.partial {
		return f.assemble(ctx, fl, c.stream, c.content, start, end, c.time, cut, false)
	}
	if !p.active {
		p.begin(start, c.time)
	}
	p.add(c.content, f.cfg.MaxRecordBytes, cut)
	p.end = end
	if c.partial {
		p.at = time.Now()
		return nil
	}
	text, joinedCut := p.take()
	return f.assemble(ctx, fl, c.stream, text, p.start, end, p.time, joinedCut, false)
}

// assemble joins lines into multiline records when TAILCAR_MULTILINE_START
// is set: a line that matches it starts a record, others join the record
// before them.
func (f *Follower) assemble(ctx context.Context, fl *file, stream int, text []byte, start, end int64, t time.Time, cut, malformed bool) error {
	if f.cfg.Multiline == nil {
		return f.emit(ctx, fl, stream, text, end, t, cut, malformed)
	}
	r := &fl.streams[stream].record
	if r.active && f.cfg.Multiline.Match(text) {
		if err := f.flushRecord(ctx, fl, stream); err != nil {
			return err
		}
	}
	if !r.active {
		r.begin(start, t)
	} else {
		r.add(newline, f.cfg.MaxRecordBytes, false)
	}
	r.add(text, f.cfg.MaxRecordBytes, cut)
	r.end, r.at = end, time.Now()
	return nil
}

var newline = []byte{'\n'}

// flushRecord hands over the multiline record of a stream.
func (f *Follower) flushRecord(ctx context.Context, fl *file, stream int) error {
	r := &fl.streams[stream].record
	if !r.active {
		return nil
	}
	text, cut := r.take()
	return f.emit(ctx, fl, stream, text, r.end, r.time, cut, false)
}

// emit hands one record over, cut to the record cap.
func (f *Follower) emit(ctx context.Context, fl *file, stream int, text []byte, end int64, t time.Time, cut, malformed bool) error {
	text, shortened := cutUTF8(text, f.cfg.MaxRecordBytes)
	return f.out.Handle(ctx, Line{
		Source: fl.source, Path: fl.path, End: end, Ack: fl.safeEnd(end), Text: text, Truncated: cut || shortened,
		Time: t, Stream: streamNames[stream], Malformed: malformed, Since: f.sinceOf(fl), Read: f.readTime(),
	})
}

// readTime is when the record being handed over was read: when its
// buffer was filled while a file is being read, now otherwise (a record
// completed by a timer or by the drain).
func (f *Follower) readTime() time.Time {
	if !f.win.at.IsZero() {
		return f.win.at
	}
	return time.Now()
}

// safeEnd is the offset a record ending at end may acknowledge: its end,
// unless a record still being assembled began before it (stdout's P
// chunks around a whole stderr line). Then it is where that one began, so
// a restart reads it again whole; the record handed over now may then
// come twice, but nothing is lost. Acks stay in order, since every record
// assembled later ends past that point.
func (fl *file) safeEnd(end int64) int64 {
	for i := range fl.streams {
		s := &fl.streams[i]
		if s.chunks.active && s.chunks.start < end {
			end = s.chunks.start
		}
		if s.record.active && s.record.start < end {
			end = s.record.start
		}
	}
	return end
}

// flushFile hands over everything fl holds back: an overlong line, then
// the records in assembly, earliest first so that acks stay in order.
func (f *Follower) flushFile(ctx context.Context, fl *file) error {
	if err := f.flushLong(ctx, fl); err != nil {
		return err
	}
	for {
		var first *pending
		stream, isChunks := 0, false
		for i := range fl.streams {
			s := &fl.streams[i]
			if s.chunks.active && (first == nil || s.chunks.start < first.start) {
				first, stream, isChunks = &s.chunks, i, true
			}
			if s.record.active && (first == nil || s.record.start < first.start) {
				first, stream, isChunks = &s.record, i, false
			}
		}
		if first == nil {
			return nil
		}
		var err error
		if isChunks {
			// Chunks whose last never came: what there is is the line.
			text, cut := first.take()
			err = f.assemble(ctx, fl, stream, text, first.start, first.end, first.time, cut, false)
			if err == nil {
				err = f.flushRecord(ctx, fl, stream)
			}
		} else {
			err = f.flushRecord(ctx, fl, stream)
		}
		if err != nil {
			return err
		}
	}
}

// flushIdleRecords hands over what no line has followed for
// MultilineWait: a line whose last container chunk never came (an app
// that printed a partial line and went quiet, or exited), then multiline
// records. It reports whether any record is still in assembly.
func (f *Follower) flushIdleRecords(ctx context.Context, now time.Time) (bool, error) {
	waiting := false
	for _, fl := range f.files {
		for i := range fl.streams {
			c := &fl.streams[i].chunks
			if !c.active {
				continue
			}
			if now.Sub(c.at) < f.cfg.MultilineWait {
				waiting = true
				continue
			}
			text, cut := c.take()
			if err := f.assemble(ctx, fl, i, text, c.start, c.end, c.time, cut, false); err != nil {
				return waiting, err
			}
		}
		for i := range fl.streams {
			r := &fl.streams[i].record
			if !r.active {
				continue
			}
			if now.Sub(r.at) < f.cfg.MultilineWait {
				waiting = true
				continue
			}
			if err := f.flushRecord(ctx, fl, i); err != nil {
				return waiting, err
			}
		}
	}
	return waiting, nil
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
