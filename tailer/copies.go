package tailer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// copytruncate rotation copies a file and then truncates it. When the
// patterns match the copies (access.log*), the copy holds what the
// original had before the truncation; reading it from its start would
// send again everything already read from the original. So a copy resumes
// where the original had been read, capped at the copy's size: nothing is
// read twice, and what had not been read before the truncation is read
// from the copy.
//
// Only a real copy may resume: a file whose original was truncated. A new
// file that merely starts like another (jobs that write the same header)
// is read from its start. When in doubt, read from the start: a duplicate
// is recoverable, a loss is not.

// retired is a generation ended by truncation, kept so that its
// copytruncate copy resumes where it had been read: at readEnd, or at
// the gap that no read reached before the truncation.
type retired struct {
	fp      fingerprint
	readEnd int64
	gap     unread
	at      time.Time
}

// unread is a run of a file's bytes, from one offset to another, that no
// read reached before a truncation, while those after it were handed
// over (rescue.go). The zero value is none.
type unread struct{ from, to int64 }

// resumeIn decides where the copy, of size bytes, starts: at the gap, if
// any of it is in the copy, skipping what follows it up to readEnd;
// otherwise where the generation had been read to.
func (r retired) resumeIn(size int64, origin string) copyDecision {
	switch {
	case r.gap.to <= r.gap.from:
		return copyDecision{resume: true, offset: min(r.readEnd, size), origin: origin}
	case size < r.gap.to:
		// The copy ended before the gap did: the rest of it is lost.
		return copyDecision{resume: true, offset: min(r.gap.from, size), lost: r.gap.to - max(r.gap.from, size), origin: origin}
	}
	return copyDecision{resume: true, offset: r.gap.from, skip: unread{from: r.gap.to, to: min(r.readEnd, size)}, origin: origin}
}

// copyDecision says where a newly found file starts.
type copyDecision struct {
	resume bool  // a copy: start at offset
	offset int64 // where the original's truncated generation had been read to
	// skip, when set, is a run already handed over from the original: the
	// copy is read up to its start, then goes on from its end.
	skip unread
	// lost is how much of the gap the copy does not have.
	lost   int64
	origin string // the original's name, for the log
	wait   bool   // perhaps a copy still being made: decide on a later scan
}

// copyOf decides whether fd, a file found for the first time, is the copy
// of a file whose generation ended by truncation.
func (f *Follower) copyOf(ctx context.Context, fd *os.File, c candidate, entries []entry) (copyDecision, error) {
	n, err := fd.ReadAt(f.scratch[:fingerprintMax], 0)
	if err != nil && err != io.EOF {
		return copyDecision{}, fmt.Errorf("read %s: %w", c.path, err)
	}
	head := append([]byte(nil), f.scratch[:n]...)
	f.hashPrefixes(head)
	// A copy is written while we look; one that has stopped changing for
	// RotateWait is finished. At the drain there is no later scan to wait
	// for, so the doubt is settled by reading from the start.
	recent := !f.draining && time.Since(c.mtime) < f.cfg.RotateWait
	if len(head) == 0 {
		return copyDecision{wait: recent}, nil
	}
	for _, orig := range f.files {
		// The copy starts as the original does now, or as it did when last
		// read (the original may be truncated already, unknown to us yet).
		if orig.id == c.id || orig.rotated || !f.mayStartAs(head, orig) {
			continue
		}
		alike := f.isPrefixOf(head, orig)
		if !alike && !f.headHas(head, orig.fp) {
			continue
		}
		if f.guards.rescuing(orig) {
			// The original is at risk of truncation right now; it is read,
			// and the copy decided, once the rescue ends.
			return copyDecision{wait: true}, nil
		}
		// Read what the original still has first, so that it is not read
		// twice; this is also where its truncation is noticed. The order
		// matters: an original not truncated now was not truncated when it
		// was compared either.
		generation := orig.source
		if err := f.readToEnd(ctx, orig, -1, false); err != nil {
			return copyDecision{}, err
		}
		if orig.source != generation {
			// Truncated: copytruncate had finished the copy before that, so
			// it is complete now (the glob may have seen it empty); resume
			// where the truncated generation ended.
			return f.retired[len(f.retired)-1].resumeIn(sizeOf(fd), orig.path), nil
		}
		if alike && recent {
			// Identical so far: the truncation that makes it a copy may
			// still come.
			return copyDecision{wait: true}, nil
		}
		// The original was not truncated: a new file that starts alike, or
		// a plain copy.
		return copyDecision{}, nil
	}
	for i := len(f.retired) - 1; i >= 0; i-- {
		r := f.retired[i]
		// The copy was complete when the original was truncated, so it
		// stopped changing about then.
		if c.mtime.Before(r.at.Add(f.cfg.RotateWait)) && f.headHas(head, r.fp) {
			return r.resumeIn(sizeOf(fd), "a truncated file"), nil
		}
	}
	// Checkpoints from before a restart: a copy of a generation that was
	// truncated while tailcar was down.
	for _, e := range entries {
		if e.id != c.id && f.headHas(head, e.fp) && f.generationEnded(e) {
			return copyDecision{resume: true, offset: min(e.offset, sizeOf(fd)), origin: e.path}, nil
		}
	}
	return copyDecision{}, nil
}

func sizeOf(fd *os.File) int64 {
	fi, err := fd.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// generationEnded reports whether the file generation of a checkpoint is
// over: its inode now holds another generation or other content, or is
// gone. While it goes on, a file that starts alike is not its copy.
func (f *Follower) generationEnded(e entry) bool {
	if fl := f.files[e.id]; fl != nil {
		return fl.source != e.source
	}
	fd, fi, err := f.openOwn(e.path)
	if err != nil {
		return true
	}
	defer fd.Close()
	if id, ok := idOf(fi); !ok || id != e.id {
		return true
	}
	same, _, err := checkFingerprint(fd, e.fp, f.scratch)
	return err != nil || !same || fi.Size() < e.offset
}

// isPrefixOf reports whether head is how orig starts now; it learns
// orig's lead on the way.
func (f *Follower) isPrefixOf(head []byte, orig *file) bool {
	if len(head) == 0 || orig.fd == nil {
		return false
	}
	buf := f.scratch[:max(len(head), leadLen, orig.fp.Len)]
	n, _ := orig.fd.ReadAt(buf, 0)
	// The bytes are the generation's lead only if the file still starts as
	// the loop last saw it: truncated since, unknown to the loop yet, it
	// holds the next generation, whose lead would refuse the real copy
	// until the loop noticed (a copy taken for a new file, read again from
	// its start).
	if fp := orig.fp; fp.Len >= leadLen && n >= fp.Len && fnvAdd(fnvOffset, buf[:fp.Len]) == fp.Sum {
		copy(orig.lead[:], buf)
		orig.leadOf = orig.source
	}
	return n >= len(head) && bytes.Equal(buf[:len(head)], head)
}

// leadLen is how much of each file's start is kept to tell new files
// from copies without reading every followed file again: a node follows
// thousands, and containers start all the time.
const leadLen = 32

// mayStartAs reports whether a file starting with head could be a copy
// of orig's generation: false only when orig's lead is known and differs.
// A copy starts as the generation did, whose first bytes do not change
// without a truncation, which starts a new source.
func (f *Follower) mayStartAs(head []byte, orig *file) bool {
	if orig.leadOf != orig.source { // not read yet (sources are never 0)
		return true
	}
	n := min(len(head), leadLen)
	return bytes.Equal(head[:n], orig.lead[:n])
}

// hashPrefixes computes the fingerprint sum of every prefix of head, so
// that headHas compares a fingerprint without reading or hashing again.
func (f *Follower) hashPrefixes(head []byte) {
	h := uint64(fnvOffset)
	f.prefixSums[0] = h
	for i := range head {
		h = fnvAdd(h, head[i:i+1])
		f.prefixSums[i+1] = h
	}
}

// headHas reports whether head, as given to hashPrefixes, starts with the
// bytes fp describes (checkFingerprint's test, on bytes already read).
func (f *Follower) headHas(head []byte, fp fingerprint) bool {
	return fp.Len >= copyMinFingerprint && fp.Len <= len(head) && f.prefixSums[fp.Len] == fp.Sum
}

// copyRecent is how lately a copy found at a truncation must have been
// changed. A copier truncates the file right after it made the copy, but
// logrotate gives the copy the original's times as it found them.
const copyRecent = time.Minute

// copyLooks bounds how many files readFromCopy opens to find the copy.
const copyLooks = 8

// readFromCopy reads, as fl's own lines, what fl's truncated generation
// had from fl's offset up to to (-1: all of it) from the copy a copier
// made just before the truncation, whether or not the patterns match the
// copy: the most recently changed regular file in fl's directory, changed
// in the last copyRecent, that starts as the generation did. What no read
// reached before the truncation (the rescue started too late, or not at
// all) is then kept when logrotate copies access.log to access.log.1 and
// the pattern is *.log.
func (f *Follower) readFromCopy(ctx context.Context, fl *file, to int64) error {
	if fl.fp.Len < copyMinFingerprint {
		return nil
	}
	dir := filepath.Dir(fl.real)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type candidate struct {
		path  string
		mtime time.Time
	}
	var found []candidate
	now := time.Now()
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil || path == fl.real || f.isOwn(path) || info.Size() <= fl.offset || now.Sub(info.ModTime()) > copyRecent {
			continue
		}
		if id, ok := idOf(info); !ok || id == fl.id || f.files[id] != nil {
			continue
		}
		found = append(found, candidate{path, info.ModTime()})
	}
	slices.SortFunc(found, func(a, b candidate) int { return b.mtime.Compare(a.mtime) })
	for _, c := range found[:min(len(found), copyLooks)] {
		fd, fi, err := f.openOwn(c.path)
		if err != nil {
			continue
		}
		if same, _, err := checkFingerprint(fd, fl.fp, f.scratch); err != nil || !same {
			fd.Close()
			continue
		}
		defer fd.Close()
		end := fi.Size()
		if to >= 0 {
			end = min(end, to)
		}
		if end <= fl.offset {
			return nil
		}
		f.cfg.Log.Info().Str("path", fl.path).Str("copy", c.path).Int64("from", fl.offset).Int64("to", end).
			Msg("reading from the copy what the truncation wiped before tailcar read it")
		return f.frameFrom(ctx, fl, fd, end, false)
	}
	return nil
}
