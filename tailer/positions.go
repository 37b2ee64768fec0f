package tailer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// pruneAfter is how long an entry is kept for a file no longer
	// followed: long enough for a rotated copy to be recognised.
	pruneAfter = 24 * time.Hour
	// seenResolution limits how often following a file refreshes its
	// entry's Seen time, so an idle file does not dirty the positions.
	seenResolution = 10 * time.Minute
)

// Position is the checkpoint of one file generation: a file, identified by
// device, inode and fingerprint, and the offset up to which every record
// has been delivered.
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
	Version int        `json:"version"`
	Files   []Position `json:"files"`
}

// entry is a Position in memory.
type entry struct {
	source uint64
	path   string
	id     fileID
	fp     fingerprint
	offset int64
	seen   time.Time
}

// Positions holds the acked checkpoint of every file and writes it to disk
// atomically: temp file, fsync, rename, fsync of the directory.
type Positions struct {
	path string
	log  zerolog.Logger

	mu      sync.Mutex
	entries map[uint64]*entry
	dirty   bool
	saved   time.Time
	// changed wakes Run when there is something to save, so an idle
	// tailcar has no saver waking up on a timer.
	changed chan struct{}
}

// LoadPositions reads the positions file at path. A missing file is a first
// start; a corrupt file or one of another version is logged and ignored,
// so the files are read as on a first start rather than not at all.
func LoadPositions(path string, log zerolog.Logger) (*Positions, error) {
	p := &Positions{path: path, log: log, entries: make(map[uint64]*entry), changed: make(chan struct{}, 1)}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create positions directory: %w", err)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	var pf positionsFile
	if err := json.Unmarshal(data, &pf); err != nil {
		log.Warn().Err(err).Str("path", path).Msg("positions file is corrupt; starting as if there were none")
		return p, nil
	}
	if pf.Version != positionsVersion {
		log.Warn().Int("version", pf.Version).Str("path", path).Msg("positions file is of another version; starting as if there were none")
		return p, nil
	}
	for _, pos := range pf.Files {
		src, err1 := strconv.ParseUint(pos.Source, 16, 64)
		sum, err2 := strconv.ParseUint(pos.FP, 16, 64)
		if err1 != nil || err2 != nil || pos.Offset < 0 {
			log.Warn().Str("source", pos.Source).Msg("skipping a malformed positions entry")
			continue
		}
		p.entries[src] = &entry{
			source: src, path: pos.Path, id: fileID{Dev: pos.Dev, Ino: pos.Ino},
			fp: fingerprint{Len: pos.FPLen, Sum: sum}, offset: pos.Offset, seen: pos.Seen,
		}
	}
	return p, nil
}

// Path is where the positions are written.
func (p *Positions) Path() string { return p.path }

// Ack moves source's checkpoint to offset. Acks for a source that is no
// longer tracked (a truncated generation) are ignored.
func (p *Positions) Ack(source uint64, offset int64) {
	p.mu.Lock()
	if e, ok := p.entries[source]; ok && e.offset != offset {
		e.offset = offset
		p.markDirtyLocked()
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

// track starts or replaces the checkpoint of a generation.
func (p *Positions) track(e entry) {
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

// update records a file's current path and fingerprint, and that it is
// still followed.
func (p *Positions) update(source uint64, path string, fp fingerprint, now time.Time) {
	p.mu.Lock()
	if e, ok := p.entries[source]; ok {
		if e.path != path || e.fp != fp || now.Sub(e.seen) > seenResolution {
			e.path, e.fp, e.seen = path, fp, now
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

// Save writes the positions if they changed since the last save.
func (p *Positions) Save() error {
	p.mu.Lock()
	if !p.dirty {
		p.mu.Unlock()
		return nil
	}
	pf := positionsFile{Version: positionsVersion, Files: make([]Position, 0, len(p.entries))}
	for _, e := range p.entries {
		pf.Files = append(pf.Files, Position{
			Source: strconv.FormatUint(e.source, 16), Path: e.path, Dev: e.id.Dev, Ino: e.id.Ino,
			FPLen: e.fp.Len, FP: strconv.FormatUint(e.fp.Sum, 16), Offset: e.offset, Seen: e.seen.UTC(),
		})
	}
	p.dirty = false
	p.mu.Unlock()

	data, err := json.Marshal(pf)
	if err != nil {
		return fmt.Errorf("encode positions: %w", err)
	}
	if err := writeAtomic(p.path, data); err != nil {
		p.mu.Lock()
		p.markDirtyLocked()
		p.mu.Unlock()
		return err
	}
	p.mu.Lock()
	p.saved = time.Now()
	p.mu.Unlock()
	return nil
}

// LastSaved is when positions were last written.
func (p *Positions) LastSaved() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.saved
}

// Run saves the positions when they change, at most once per interval,
// until ctx ends. The final save at exit is the caller's, after the last
// acks are in.
func (p *Positions) Run(ctx context.Context, interval time.Duration) error {
	failing := false
	var last time.Time // the last attempt
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
					return nil
				}
			}
			last = time.Now()
			err := p.Save()
			switch {
			case err != nil && !failing:
				failing = true
				p.log.Error().Err(err).Msg("cannot save positions; retrying")
			case err == nil && failing:
				failing = false
				p.log.Info().Msg("positions saved again")
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// writeAtomic replaces path with data so that a crash leaves either the old
// file or the new one, never a mix: temp file, fsync, rename, fsync dir.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
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
