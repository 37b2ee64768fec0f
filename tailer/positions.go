package tailer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// positionsVersion is written into the positions file; a file of another
// version is not trusted, because its offsets may mean something else.
const positionsVersion = 1

// Defaults for checkpointing.
const (
	// DefaultSaveInterval is how often acked positions are written, when
	// they changed. Lines acked but not yet saved are shipped again after a
	// crash, never lost; a short interval keeps that repeat small, and an
	// idle tailcar writes nothing.
	DefaultSaveInterval = 200 * time.Millisecond
	// DefaultDurableInterval is how often the saved positions are also
	// made durable (fsync): while they change, with the first change this
	// long after the last durable save; when they stop changing, this long
	// after the last one. A save in between goes to the recent file without
	// one: it survives any crash of tailcar, since the page cache is the
	// kernel's, but not always a power cut, after which the durable file
	// misses about this much of the last acks. Missing acks mean lines sent
	// again, never lines lost. Two fsyncs per save were a third of the idle
	// CPU (W3) at one save a second, and about a third still at one every
	// 10 s (ext4 writes the inode's table block and the directory's
	// buffers synchronously): about 1 millicore of W3, measured beside the
	// 10 s build (README, "Performance").
	DefaultDurableInterval = 60 * time.Second
	// pruneAfter is how long an entry is kept for a file no longer
	// followed: long enough for a rotated copy to be recognised.
	pruneAfter = 24 * time.Hour
	// seenResolution limits how often following a file refreshes its
	// entry's Seen time, so an idle file does not dirty the positions.
	seenResolution = 10 * time.Minute
)

// Position is the checkpoint of one file generation as it is stored: a
// file, identified by device, inode and fingerprint, and the offset up to
// which every record has been delivered.
type Position struct {
	Source string    `json:"source"` // hex; stable for the generation's life
	Path   string    `json:"path"`
	Dev    uint64    `json:"dev"`
	Ino    uint64    `json:"ino"`
	FPLen  int       `json:"fp_len"`
	FP     string    `json:"fp"` // hex of the FNV-64a hash of the first FPLen bytes
	Offset int64     `json:"offset"`
	Seen   time.Time `json:"seen"`
}

type positionsFile struct {
	Version int `json:"version"`
	// Seq numbers the saves, so that the newer of the durable and the
	// recent file is known; a file written before it existed has 0.
	Seq uint64 `json:"seq"`
	// Files is kept as written, for the checksum; entries is it decoded.
	Files   json.RawMessage `json:"files"`
	entries []json.RawMessage
	// Sum is the CRC-32C of Seq and Files (sumOf). The recent file is
	// overwritten in place, so a crash in the middle of a write could leave
	// the head of one save and the tail of another: Sum tells. Files
	// written before it existed have none.
	Sum *uint32 `json:"sum,omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sumOf is the checksum of a save's number and its files as written.
func sumOf(seq uint64, files []byte) uint32 {
	return crc32.Update(crc32.Checksum(strconv.AppendUint(nil, seq, 10), castagnoli), castagnoli, files)
}

// entry is a Position in memory.
type entry struct {
	source uint64
	path   string
	// pathJSON is path as a JSON string (setPath): a save encodes every
	// entry each time, and the path is what needs escaping.
	pathJSON []byte
	id       fileID
	fp       fingerprint
	offset   int64
	seen     time.Time
	// skip, when set, is a run of a copy handed over from its original:
	// an ack that reaches its start reaches its end (copies.go). Acks are
	// in the order records were handed over, and the run's were first.
	skip unread
}

// Positions holds the acknowledged offset of every file generation and
// writes them to disk into two files:
//   - path, durable: temp file, fsync, rename, fsync of the directory;
//     written every DefaultDurableInterval while positions change, and at
//     the end;
//   - path.recent, every save in between: overwritten in place, in one
//     write, with a checksum and no fsync. A temp file and a rename cost
//     a hundred times more (ext4 starts writing a file renamed over
//     another at once), and were most of an idle tailcar's system time.
//
// Loading takes the newer valid one of the two (Seq), so a crash of
// tailcar loses no save, and a power cut or a kill in the middle of a
// write that garbles the recent file falls back to the durable one.
//
// Each part of it has one writer:
//   - the follow loop owns which generations exist and what identifies
//     them (track, forget, touch, prune); track sets the offset a
//     generation starts at, before any record of it is handed over;
//   - the shipper's goroutine owns the offsets after that (Ack). An ack
//     for a generation that is no longer tracked (truncated, or deleted
//     and finished) is dropped: its offsets no longer mean anything;
//   - Run alone writes the file.
//
// One mutex guards the entries, since those writers run on different
// goroutines; the metrics scrape only reads.
type Positions struct {
	path string
	log  zerolog.Logger

	mu      sync.Mutex
	entries map[uint64]*entry
	dirty   bool
	saved   time.Time
	// seq is the last save's number; written by Run alone after loading.
	seq uint64
	// undurable says the newest save is only in the recent file; Run's.
	undurable bool
	// recent is the recent file, kept open for in-place saves, and
	// recentSize its length; Run's.
	recent     *os.File
	recentSize int
	// encoded is the last save's bytes, kept for the next one to reuse;
	// Run's.
	encoded []byte
	// changed wakes Run when there is something to save, so an idle
	// tailcar has no saver waking up on a timer.
	changed chan struct{}
}

// LoadPositions reads the positions at path, creating its directory: the
// newer valid one of the durable file and the recent one. A missing file
// is a first start. A corrupt file, or one of another version, is logged
// and ignored, and a malformed entry is skipped: the files concerned are
// read as on a first start rather than not at all. It fails when the
// positions cannot be written there, since a tailcar that cannot
// checkpoint would ship everything again at every restart.
func LoadPositions(path string, log zerolog.Logger) (*Positions, error) {
	p := &Positions{path: path, log: log, entries: make(map[uint64]*entry), changed: make(chan struct{}, 1)}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create positions directory: %w", err)
	}
	for _, name := range []string{path, recentPath(path)} {
		if fi, err := os.Stat(name); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", name)
		}
	}
	if err := checkWritable(path + ".tmp"); err != nil {
		return nil, err
	}
	durable, err := readPositionsFile(path, false, log)
	if err != nil {
		return nil, err
	}
	recent, err := readPositionsFile(recentPath(path), true, log)
	if err != nil {
		return nil, err
	}
	chosen := durable
	if recent != nil && (durable == nil || recent.Seq > durable.Seq) {
		chosen = recent
	}
	if chosen == nil {
		return p, nil
	}
	p.seq = chosen.Seq
	for _, raw := range chosen.entries {
		e, err := decodeEntry(raw)
		if err != nil {
			log.Warn().Err(err).RawJSON("entry", raw).Msg("skipping a malformed positions entry; the others are kept")
			continue
		}
		p.entries[e.source] = e
	}
	return p, nil
}

// readPositionsFile reads one positions file: nil when it is missing, or
// not to be trusted (logged). needSum is for a file written in place.
func readPositionsFile(path string, needSum bool, log zerolog.Logger) (*positionsFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	var pf positionsFile
	if err := json.Unmarshal(data, &pf); err != nil {
		log.Warn().Err(err).Str("path", path).Msg("positions file is corrupt; ignoring it")
		return nil, nil
	}
	if pf.Version != positionsVersion {
		log.Warn().Int("version", pf.Version).Str("path", path).Msg("positions file is of another version; ignoring it")
		return nil, nil
	}
	if (pf.Sum == nil && needSum) || (pf.Sum != nil && *pf.Sum != sumOf(pf.Seq, pf.Files)) {
		log.Warn().Str("path", path).Msg("positions file is corrupt (checksum); ignoring it")
		return nil, nil
	}
	if err := json.Unmarshal(pf.Files, &pf.entries); err != nil {
		log.Warn().Err(err).Str("path", path).Msg("positions file is corrupt (no list of files); ignoring it")
		return nil, nil
	}
	return &pf, nil
}

// recentPath is where saves go between durable ones.
func recentPath(path string) string { return path + ".recent" }

func decodeEntry(raw json.RawMessage) (*entry, error) {
	var pos Position
	if err := json.Unmarshal(raw, &pos); err != nil {
		return nil, err
	}
	src, err := strconv.ParseUint(pos.Source, 16, 64)
	if err != nil || src == 0 {
		return nil, fmt.Errorf("invalid source %q", pos.Source)
	}
	sum, err := strconv.ParseUint(pos.FP, 16, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid fingerprint %q", pos.FP)
	}
	if pos.Offset < 0 || pos.FPLen < 0 || pos.FPLen > fingerprintMax {
		return nil, fmt.Errorf("offset %d or fingerprint length %d out of range", pos.Offset, pos.FPLen)
	}
	e := &entry{
		source: src, id: fileID{Dev: pos.Dev, Ino: pos.Ino},
		fp: fingerprint{Len: pos.FPLen, Sum: sum}, offset: pos.Offset, seen: pos.Seen,
	}
	e.setPath(pos.Path)
	return e, nil
}

// checkWritable proves that a file can be created at path, then removes it.
func checkWritable(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("cannot write positions: %w", err)
	}
	f.Close()
	return os.Remove(path)
}

// Path is where the positions are written.
func (p *Positions) Path() string { return p.path }

// Ack moves source's checkpoint to offset: every record of it up to there
// has been delivered (or filtered). Acks for a source that is no longer
// tracked are dropped.
func (p *Positions) Ack(source uint64, offset int64) {
	p.mu.Lock()
	if e, ok := p.entries[source]; ok {
		if e.skip.to > 0 && offset >= e.skip.from {
			offset = max(offset, e.skip.to)
			e.skip = unread{}
		}
		if e.offset != offset {
			e.offset = offset
			p.markDirtyLocked()
		}
	}
	p.mu.Unlock()
}

// markDirtyLocked records a change and wakes the saver.
func (p *Positions) markDirtyLocked() {
	p.dirty = true
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// track starts the checkpoint of a new generation at its start offset.
func (p *Positions) track(e entry) {
	e.setPath(e.path)
	p.mu.Lock()
	e.seen = time.Now()
	p.entries[e.source] = &e
	p.markDirtyLocked()
	p.mu.Unlock()
}

// forget drops a generation's checkpoint.
func (p *Positions) forget(source uint64) {
	p.mu.Lock()
	if _, ok := p.entries[source]; ok {
		delete(p.entries, source)
		p.markDirtyLocked()
	}
	p.mu.Unlock()
}

// touch records a followed file's current path and fingerprint, and that
// it is still followed.
func (p *Positions) touch(source uint64, path string, fp fingerprint, now time.Time) {
	p.mu.Lock()
	if e, ok := p.entries[source]; ok {
		if e.path != path || e.fp != fp || now.Sub(e.seen) > seenResolution {
			if e.path != path {
				e.setPath(path)
			}
			e.fp, e.seen = fp, now
			p.markDirtyLocked()
		}
	}
	p.mu.Unlock()
}

// snapshot returns a copy of every entry.
func (p *Positions) snapshot() []entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]entry, 0, len(p.entries))
	for _, e := range p.entries {
		out = append(out, *e)
	}
	return out
}

// Offset returns source's acked offset.
func (p *Positions) Offset(source uint64) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[source]
	if !ok {
		return 0, false
	}
	return e.offset, true
}

// Len is how many generations have a checkpoint.
func (p *Positions) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// prune drops entries of files not followed (not in keep) and not seen
// for pruneAfter.
func (p *Positions) prune(keep map[uint64]bool, now time.Time) {
	p.mu.Lock()
	for src, e := range p.entries {
		if !keep[src] && now.Sub(e.seen) > pruneAfter {
			delete(p.entries, src)
			p.markDirtyLocked()
		}
	}
	p.mu.Unlock()
}

// save writes the positions if they changed since the last save: to the
// durable file when durable is set, else to the recent one. A durable
// save also happens when nothing changed but the newest save is only in
// the recent file.
func (p *Positions) save(durable bool) error {
	p.mu.Lock()
	if !p.dirty && !(durable && p.undurable) {
		p.mu.Unlock()
		return nil
	}
	// positionsFile's shape, written around the list as it is encoded:
	// the sum is of these very bytes, and nothing is encoded twice.
	seq := p.seq + 1
	data := append(p.encoded[:0], `{"version":`...)
	data = strconv.AppendInt(data, positionsVersion, 10)
	data = append(data, `,"seq":`...)
	data = strconv.AppendUint(data, seq, 10)
	data = append(data, `,"files":`...)
	start := len(data)
	data = p.appendEntriesLocked(data)
	p.dirty = false
	p.mu.Unlock()
	sum := sumOf(seq, data[start:])
	data = append(data, `,"sum":`...)
	data = strconv.AppendUint(data, uint64(sum), 10)
	data = append(data, '}')
	p.encoded = data

	var err error
	if durable {
		err = writeAtomic(p.path, p.path+".tmp", data)
	} else {
		err = p.writeRecent(data)
	}
	if err != nil {
		p.mu.Lock()
		p.markDirtyLocked()
		p.mu.Unlock()
		return err
	}
	p.seq++
	p.undurable = !durable
	p.mu.Lock()
	p.saved = time.Now()
	p.mu.Unlock()
	return nil
}

// appendEntriesLocked appends every entry as a JSON list of Position, as
// encoding/json would write it. By hand, because a save comes with
// nearly every ack: through encoding/json (a Position per entry, then
// Marshal) a save took twice as long with one file and ten times as long
// with a thousand (BenchmarkPositionsSave), and it was the largest thing
// an idle tailcar did beyond what the floor does (README, "Performance").
func (p *Positions) appendEntriesLocked(b []byte) []byte {
	b = append(b, '[')
	first := true
	for _, e := range p.entries {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"source":"`...)
		b = strconv.AppendUint(b, e.source, 16)
		b = append(b, `","path":`...)
		b = append(b, e.pathJSON...)
		b = append(b, `,"dev":`...)
		b = strconv.AppendUint(b, e.id.Dev, 10)
		b = append(b, `,"ino":`...)
		b = strconv.AppendUint(b, e.id.Ino, 10)
		b = append(b, `,"fp_len":`...)
		b = strconv.AppendInt(b, int64(e.fp.Len), 10)
		b = append(b, `,"fp":"`...)
		b = strconv.AppendUint(b, e.fp.Sum, 16)
		b = append(b, `","offset":`...)
		b = strconv.AppendInt(b, e.offset, 10)
		b = append(b, `,"seen":"`...)
		b = e.seen.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `"}`...)
	}
	return append(b, ']')
}

// setPath names the entry's file, and escapes the name for the saves as
// encoding/json would in Position (invalid UTF-8 becomes U+FFFD).
func (e *entry) setPath(path string) {
	e.pathJSON, _ = json.Marshal(path) // a string always encodes
	e.path = path
}

// LastSaved is when positions were last written.
func (p *Positions) LastSaved() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.saved
}

// Run saves the positions when they change, at most once per interval,
// and makes them durable at most once per durableEvery, until ctx ends;
// then it saves once more, durably, so that the last acks are kept, and
// returns that save's error. Stop it only once no more acks can come.
func (p *Positions) Run(ctx context.Context, interval, durableEvery time.Duration) error {
	defer p.closeRecent()
	failing := false
	var last, lastDurable time.Time // the last attempts
	// durableDue fires when a save went only to the recent file and no
	// change came for durableEvery since: while changes come, one of
	// their saves is the durable one, in a wake-up there is anyway.
	durableDue := time.NewTimer(durableEvery)
	durableDue.Stop()
	report := func(err error) {
		switch {
		case err != nil && !failing:
			failing = true
			p.log.Error().Err(err).Msg("cannot save positions; retrying")
		case err == nil && failing:
			failing = false
			p.log.Info().Msg("positions saved again")
		}
	}
	for {
		select {
		case <-p.changed:
			// The first change after a quiet spell is saved at once, in the
			// wake-up of the ack that made it; changes that follow within
			// the interval gather into the next save.
			if rest := interval - time.Since(last); rest > 0 {
				wait := time.NewTimer(rest)
				select {
				case <-wait.C:
				case <-ctx.Done():
					wait.Stop()
					return p.save(true)
				}
			}
			last = time.Now()
			durable := last.Sub(lastDurable) >= durableEvery
			err := p.save(durable)
			report(err)
			if err == nil && durable {
				lastDurable = last
				durableDue.Stop()
			} else if err == nil {
				durableDue.Reset(durableEvery)
			}
		case <-durableDue.C:
			last = time.Now()
			err := p.save(true)
			report(err)
			if err == nil {
				lastDurable = last
			} else {
				durableDue.Reset(durableEvery) // again, even if nothing changes
			}
		case <-ctx.Done():
			durableDue.Stop()
			return p.save(true)
		}
	}
}

// writeRecent overwrites the recent file in place with data, in one
// write: a save shorter than the file is padded with spaces (JSON allows
// them after the value), so that no moment leaves a mix of two saves
// that the checksum would have to catch, except a write cut short by a
// kill or a power cut. The file is cut back when the padding outgrows
// the save.
func (p *Positions) writeRecent(data []byte) error {
	if p.recent == nil {
		f, err := os.OpenFile(recentPath(p.path), os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("write positions: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("write positions: %w", err)
		}
		p.recent, p.recentSize = f, int(fi.Size())
	}
	size := len(data)
	for len(data) < p.recentSize {
		data = append(data, ' ')
	}
	if _, err := p.recent.WriteAt(data, 0); err != nil {
		p.closeRecent() // opened anew by the next save
		return fmt.Errorf("write positions: %w", err)
	}
	p.recentSize = len(data)
	if p.recentSize > 2*size+4096 {
		if err := p.recent.Truncate(int64(size)); err == nil {
			p.recentSize = size
		}
	}
	return nil
}

// closeRecent closes the recent file; the next save opens it again.
func (p *Positions) closeRecent() {
	if p.recent != nil {
		p.recent.Close()
		p.recent = nil
	}
}

// writeAtomic replaces path with data so that a crash of tailcar or a
// power cut leaves either the old file or the new one, never a mix: data
// into tmp, fsync, the rename, and an fsync of the directory.
func writeAtomic(path, tmp string, data []byte) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write positions: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write positions: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write positions: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
