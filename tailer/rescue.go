package tailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// A copier (logrotate's copytruncate) opens a file, copies it, fsyncs the
// copy and truncates the file, all within a few milliseconds: the lines
// written between the copy and the truncation exist only until then. The
// follow loop cannot be counted on to react in time. It may be scanning
// (logrotate's renames and the copy's creation come just before) or
// handing records on, and the events it has not taken wait behind it.
//
// So the goroutine that reads the layout events acts on an open itself.
// When another process opens a followed file that is being written, it
// starts a rescue: a goroutine that does nothing but read the file's new
// bytes into memory as soon as they are written, until the file shrinks
// or the risk is over. When the loop finds the truncation, it frames
// what the rescue kept beyond its own offset before it starts the new
// generation.
//
// The rescue reads the newest bytes first: from a line start just before
// the file's end when it starts. The loop's backlog, up to a second of
// lines with the default batch wait, is read between writes, a piece at
// a time. A backlog the truncation comes before is in the copy, which
// resumes there when the patterns match it (copies.go).
//
// What a rescue keeps goes into a memfd, at the offsets it has in the
// file, copied by the kernel (sendfile): 480 KB took 0.1–0.2 ms so,
// against 1.3 ms read into fresh Go memory, which this machine faults in
// page by page; reading the backlog first into that memory took 3 ms,
// longer than logrotate's copy and fsync.

const (
	// rescueCap bounds what a rescue keeps beyond the loop's offset; a
	// writer that outruns the loop by more is left to the loop.
	rescueCap = 4 << 20
	// tailLead is how far before the file's end a rescue looks for the
	// line it starts at; a backlog no longer than this is read first.
	tailLead = 16 << 10
	// backlogPiece is how much of the backlog a rescue keeps between two
	// looks at the file's end: about 20 µs.
	backlogPiece = 64 << 10
	// spinBase and spinPerMiB: how long a rescue reads without sleeping
	// after the open, for a file of a given size (see rescue.spinUntil).
	spinBase   = 20 * time.Millisecond
	spinPerMiB = 10 * time.Millisecond
	// falseAlarmCalm: after a rescue that no truncation ended, the file's
	// rescues do not spin for this long. A shell's >> opens the file for
	// each line; spinning at each would cost 20 ms of every 250.
	falseAlarmCalm = 10 * time.Second
	// rawPiece bounds one copy while spinning (see keepFrom): seeking and
	// copying 16 KiB took 3.9 µs on the test machine.
	rawPiece = 16 << 10
	// writtenLately: a file another process opens is rescued only if it
	// was written this recently. A file nobody writes (an old copy being
	// compressed) loses nothing to a truncation, and a slow writer is
	// unlikely to write in the milliseconds that matter; the loop polls
	// both anyway.
	writtenLately = 500 * time.Millisecond
	// ownOpenGrace: an open within this long of the loop's own opening
	// of the file is taken for the loop's (it reopens files it closed
	// for being idle, and opens the ones it starts following).
	ownOpenGrace = 100 * time.Millisecond
)

// guards are the followed files a rescue may be started for, by
// identity. The loop adds and removes them; the events' reader starts
// rescues; the loop takes or drops them.
type guards struct {
	mu   sync.Mutex
	byID map[fileID]*guard
	// ended wakes the loop when a rescue ends, and endedFiles (under mu)
	// says whose: the loop left them unread meanwhile.
	ended      chan struct{}
	endedFiles []*file
	// running counts the rescues running. Meanwhile the loop scans and
	// decides possible copies no more: a copier's creating and writing
	// the copy would otherwise keep it (and a processor) busy in the very
	// milliseconds the rescues need.
	running atomic.Int32
	poll    time.Duration // how long a rescue lasts after an open
	// backlogPiece is the package's; tests set 0 to leave the backlog to
	// the copy, as a truncation that comes first does.
	backlogPiece int
	// spin is spinBase; tests set 0 to see the rescue sleep at once.
	spin time.Duration
	// beforeRescueRead, set by tests, runs in each rescue before each
	// of its reads.
	beforeRescueRead func()
	log              zerolog.Logger
}

// guard is one followed file's entry. fd and rescue are under guards.mu;
// readTo is the loop's, read by the events' reader; file only goes back to
// the loop.
type guard struct {
	file   *file
	fd     *os.File
	rescue *rescue
	// added is when the loop opened the file: the open event that comes
	// right after is most likely its own.
	added time.Time
	// fp is the loop's fingerprint of the generation it reads.
	fp atomic.Pointer[fingerprint]
	// calmUntil: a rescue ended lately without a truncation (an app that
	// opens the file for each line, a viewer), so rescues until then do
	// not spin; under guards.mu.
	calmUntil time.Time
	readTo    atomic.Int64 // the loop's offset in the file
}

func newGuards(poll time.Duration, log zerolog.Logger) *guards {
	return &guards{byID: make(map[fileID]*guard), ended: make(chan struct{}, 1), poll: poll, backlogPiece: backlogPiece, spin: spinBase, log: log}
}

// add makes fl, just opened as fd, a file that can be rescued.
func (g *guards) add(fl *file, fd *os.File) {
	gd := &guard{file: fl, fd: fd, added: time.Now()}
	gd.readTo.Store(fl.offset)
	fp := fl.fp
	gd.fp.Store(&fp)
	var stale *rescue
	g.mu.Lock()
	if old := g.byID[fl.id]; old != nil {
		stale, old.rescue = old.rescue, nil
	}
	g.byID[fl.id] = gd
	g.mu.Unlock()
	fl.guard = gd
	stale.discard()
}

// remove forgets fl before its descriptor is closed, and stops its
// rescue.
func (g *guards) remove(fl *file) {
	gd := fl.guard
	if gd == nil {
		return
	}
	fl.guard = nil
	g.mu.Lock()
	if g.byID[fl.id] == gd {
		delete(g.byID, fl.id)
	}
	r := gd.rescue
	gd.rescue = nil
	g.mu.Unlock()
	r.discard()
}

// take hands fl's rescue, if any, over to the loop, stopped: what it kept
// is the loop's.
func (g *guards) take(fl *file) *rescue {
	if fl.guard == nil {
		return nil
	}
	g.mu.Lock()
	r := fl.guard.rescue
	fl.guard.rescue = nil
	g.mu.Unlock()
	if r != nil {
		r.halt()
		<-r.done
	}
	return r
}

// takeEnded returns the files whose rescues ended since the last call.
func (g *guards) takeEnded() []*file {
	g.mu.Lock()
	defer g.mu.Unlock()
	ended := g.endedFiles
	g.endedFiles = nil
	return ended
}

// rescueState is where a file's rescue stands.
type rescueState int

const (
	noRescue rescueState = iota
	rescueRunning
	rescueEnded // what it kept waits for the loop: a truncation, or nothing
)

// state reports where fl's rescue stands. The loop leaves a file whose
// rescue runs unread until it ends (and wakes the loop through ended):
// reading a backlog and handing its records on would take the processor
// the rescue needs in the milliseconds before the truncation, and what
// the rescue keeps is framed from memory if the truncation comes.
func (g *guards) state(fl *file) rescueState {
	if fl.guard == nil {
		return noRescue
	}
	g.mu.Lock()
	r := fl.guard.rescue
	g.mu.Unlock()
	if r == nil {
		return noRescue
	}
	select {
	case <-r.done:
		return rescueEnded
	default:
		return rescueRunning
	}
}

// rescuing reports whether fl's rescue is running.
func (g *guards) rescuing(fl *file) bool { return g.state(fl) == rescueRunning }

// drop stops fl's rescue, if any, and forgets what it kept: the risk is
// over.
func (g *guards) drop(fl *file) {
	if fl.guard == nil {
		return
	}
	g.mu.Lock()
	r := fl.guard.rescue
	fl.guard.rescue = nil
	if r != nil {
		fl.guard.calmUntil = time.Now().Add(falseAlarmCalm)
	}
	g.mu.Unlock()
	r.discard()
}

// opened is called by the layout events' reader for another process's
// open of path, before the loop sees the event: a followed file that is
// being written gets a rescue.
func (g *guards) opened(path string, now time.Time) {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	gd := g.byID[fileID{Dev: uint64(st.Dev), Ino: st.Ino}]
	if gd == nil || now.Sub(gd.added) < ownOpenGrace || now.UnixNano()-st.Mtim.Nano() > int64(writtenLately) {
		return
	}
	if st.Size < gd.readTo.Load() || !gd.sameGeneration() {
		// Truncated already (the open's event came late): what the file
		// holds now is the next generation, which a rescue would keep as
		// the end of the last one. The loop reads the copy instead.
		return
	}
	if r := gd.rescue; r != nil {
		select {
		case <-r.done:
			if st.Size < r.tailTo {
				// It ended with a truncation the loop has not seen yet:
				// what it kept is still to be framed.
				return
			}
		default:
			// Running, for its own time only: a file opened again and
			// again (a viewer polling it) must still get read by the loop
			// between rescues.
			return
		}
		r.keep.Close() // ended, with nothing to frame
		gd.calmUntil = now.Add(falseAlarmCalm)
	}
	spin := g.spin
	if now.Before(gd.calmUntil) {
		spin = 0
	}
	r, err := startRescue(path, gd.fd, gd.readTo.Load(), now.Add(g.poll).UnixNano(), spin, g, gd.file, st.Size)
	if err != nil {
		g.log.Warn().Err(err).Str("path", path).Msg("cannot watch a file at risk of truncation closely; the loop polls it instead")
		return
	}
	gd.rescue = r
}

// sameGeneration reports whether the file still starts as the loop's
// fingerprint says: a truncated file may have grown past the loop's offset
// again by the time its copier's open is seen.
func (gd *guard) sameGeneration() bool {
	fp := gd.fp.Load()
	if fp == nil || fp.Len == 0 {
		return true
	}
	same, _, err := checkFingerprint(gd.fd, *fp, make([]byte, fingerprintMax))
	return err == nil && same
}

// rescue is one file's rescuer. It keeps two runs of the file's bytes:
// the newest, from tailFrom on, and the loop's backlog, from from on up
// to tailFrom at most. Both are in keep, at their offsets in the file;
// their ends belong to its goroutine until done is closed.
type rescue struct {
	fd int // a duplicate of the file's descriptor, closed by the goroutine
	// changes is the rescue's own inotify instance, watching only this
	// file for writes. It is non-blocking, so that the rescue waits for
	// it in the runtime's poller: its read deadline is the rescue's end,
	// and a halt moves it to the past. (A wait in poll(2) held a thread in
	// a system call, which the runtime's monitor then checks every 20 µs.)
	changes *os.File
	// keep is a memfd, closed by whoever has the rescue last: the loop
	// once it framed what it kept, or discard.
	keep   *os.File
	keepFd int
	from   int64 // the loop's offset when the rescue started
	// seen is the file's size when the open was seen. The file only grows
	// until its truncation, so a look that finds it shorter than that (or
	// than tailTo) finds the truncation, and a byte read before a look
	// that does not is the generation's being copied. What size cannot
	// tell is a next generation already longer than seen by the rescue's
	// first read: only a file of a few KiB at the open, truncated and
	// regrown within that millisecond, would be.
	seen      int64
	backlogTo int64
	tailFrom  int64
	tailTo    int64
	// piece is how much backlog to keep between writes; 0 keeps none.
	piece int
	until int64 // Unix nanoseconds
	// spinUntil (Unix nanoseconds) ends the first part of the rescue, in
	// which it reads again at once instead of sleeping until a write.
	// Woken by the write's event, it came 0.3–1 ms after the write on the
	// test machine, and logrotate truncates 1–4 ms after its open: a line
	// written in the last millisecond was gone before the rescue read it
	// (46 lines in 6 of 10 runs of bench/copytruncate.sh).
	// Reading without a pause (a few microseconds a turn) narrows that to
	// lines written microseconds before the truncation. The part lasts
	// long enough for the copy and its fsync: spinBase, and spinPerMiB
	// for each MiB the file holds; a file opened by a reader that does not
	// truncate (a person's less, another agent) costs that much CPU once.
	spinUntil int64
	read      atomic.Int64 // the offset the newest bytes are kept to, for the log and for tests
	// backlogRead is the offset the backlog is kept to, for tests.
	backlogRead atomic.Int64
	waits       atomic.Int64 // how often it slept, for tests
	asleep      atomic.Bool  // waiting for a write, for tests
	// pin holds the page the file ends in (pin.go): the lines written
	// into it after the rescue's last read, up to the truncation, are kept
	// even if the rescue is off the processor meanwhile. nil where the
	// file cannot be mapped.
	pin *pagePin
	// cut: the goroutine saw the truncation.
	cut bool
	// pinned is how many bytes the pin kept beyond the last read, for the
	// log and for tests.
	pinned int64
	// beforeRead, set by tests, runs before each read.
	beforeRead func()
	stop       atomic.Bool
	done       chan struct{}
}

// kept is how many bytes the rescue keeps.
func (r *rescue) kept() int64 { return r.tailTo - r.tailFrom + r.backlogTo - r.from }

// discard stops r, if any, and lets go of what it kept. The caller must
// not hold the guards' lock, which the goroutine takes as it ends.
func (r *rescue) discard() {
	if r == nil {
		return
	}
	r.halt()
	<-r.done
	r.keep.Close()
}

// halt stops the rescue and wakes it from its wait. After the goroutine
// closed changes, the deadline goes nowhere.
func (r *rescue) halt() {
	r.stop.Store(true)
	_ = r.changes.SetReadDeadline(time.Unix(0, 1))
}

// startRescue starts keeping fd's bytes from offset from on, until the
// Unix nanosecond until, reading without sleeping for spin and spinPerMiB
// per MiB; size is the file's size now.
func startRescue(path string, fd *os.File, from, until int64, spin time.Duration, g *guards, fl *file, size int64) (*rescue, error) {
	conn, err := fd.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup, dupErr := -1, error(nil)
	if err := conn.Control(func(raw uintptr) { dup, dupErr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("dup: %w", dupErr)
	}
	// After its first part (spinUntil), the rescue reads on each write, as
	// an eager reader would, and sleeps until a write, a halt or its end:
	// a wait bounded in microseconds cost a wake-up each, thousands a
	// second while an app that opens the file for each line (a shell's >>)
	// keeps a rescue running.
	changes, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err == nil {
		if _, err = unix.InotifyAddWatch(changes, path, unix.IN_MODIFY); err != nil {
			unix.Close(changes)
		}
	}
	if err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("inotify: %w", err)
	}
	keepFd, err := unix.MemfdCreate("tailcar-rescue", unix.MFD_CLOEXEC)
	if err != nil {
		unix.Close(dup)
		unix.Close(changes)
		return nil, fmt.Errorf("memfd: %w", err)
	}
	r := &rescue{
		fd: dup, changes: os.NewFile(uintptr(changes), "rescue-changes"), keep: os.NewFile(uintptr(keepFd), "rescue-kept"), keepFd: keepFd,
		from: from, seen: size, backlogTo: from, tailFrom: from, tailTo: from, piece: g.backlogPiece, until: until, done: make(chan struct{}),
	}
	r.startNearTheEnd(size)
	if pin, err := newPagePin(dup, r.tailFrom, size-r.tailFrom+rescueCap); err == nil {
		r.pin = pin
	} else {
		g.log.Debug().Err(err).Str("path", path).Msg("cannot pin the page the file ends in; the rescue keeps what it reads")
	}
	r.beforeRead = g.beforeRescueRead
	if spin > 0 {
		r.spinUntil = min(until, time.Now().Add(spin+time.Duration(size>>20)*spinPerMiB).UnixNano())
	}
	// Set before the goroutine starts, so that no halt comes before it.
	if err := r.changes.SetReadDeadline(time.Unix(0, until)); err != nil {
		r.pin.close()
		unix.Close(dup)
		r.changes.Close()
		r.keep.Close()
		return nil, fmt.Errorf("inotify: %w", err)
	}
	r.read.Store(r.tailTo)
	r.backlogRead.Store(from)
	g.running.Add(1)
	go func() {
		defer func() {
			g.mu.Lock()
			g.endedFiles = append(g.endedFiles, fl)
			g.mu.Unlock()
			g.running.Add(-1)
			select {
			case g.ended <- struct{}{}:
			default: // a wake-up is pending already
			}
		}()
		r.run()
	}()
	return r, nil
}

// startNearTheEnd moves the start of the newest bytes to the first line
// that starts within tailLead of size. A shorter backlog, or a longer
// line, is kept from the loop's offset on.
func (r *rescue) startNearTheEnd(size int64) {
	if size-r.from <= tailLead {
		return
	}
	lead := make([]byte, tailLead)
	n, _ := unix.Pread(r.fd, lead, size-tailLead)
	if i := bytes.IndexByte(lead[:max(n, 0)], '\n'); i >= 0 {
		r.tailFrom = size - tailLead + int64(i) + 1
		r.tailTo = r.tailFrom
	}
}

func (r *rescue) run() {
	defer close(r.done)
	defer unix.Close(r.fd)
	defer r.changes.Close()
	defer r.keepPinned()
	var st unix.Stat_t
	buf := make([]byte, unix.SizeofInotifyEvent+unix.NAME_MAX+1)
	for !r.stop.Load() && time.Now().UnixNano() < r.until {
		if r.beforeRead != nil {
			r.beforeRead()
		}
		room := rescueCap - r.kept()
		if room <= 0 {
			return // the loop is far behind; the copy holds what it has not read
		}
		spinning := time.Now().UnixNano() < r.spinUntil
		n, err := r.keepFrom(&r.tailTo, room, spinning)
		if n > 0 {
			if r.tailTo < r.seen && r.truncated(&st, spinning) {
				// A read that ends short of the size seen at the open may
				// have read the next generation: the truncation came
				// between the open's checks and this read, and the file
				// grew again past where the rescue starts.
				r.tailTo -= int64(n)
				r.cut = true
				return
			}
			r.read.Store(r.tailTo)
			// At once, not at the next turn's look: the writer may begin
			// the page's next line and the copier truncate before it.
			r.pin.hold(r.tailTo, spinning)
			continue
		}
		if err != nil && err != unix.EINTR && err != unix.EAGAIN {
			return
		}
		// Nothing new: the file has not grown, or it shrank. Bytes read
		// after a truncation would belong to the next generation.
		if r.truncated(&st, spinning) {
			r.cut = true
			return
		}
		if r.pin.hold(r.tailTo, spinning) {
			continue // to a look that confirms the pin
		}
		if n := r.keepBacklog(spinning); n > 0 {
			if r.truncated(&st, spinning) {
				// Perhaps before the piece was read: the backlog lies
				// below the size seen at the open, where the next
				// generation grows first.
				r.backlogTo -= n
				r.cut = true
				return
			}
			r.backlogRead.Store(r.backlogTo)
			continue
		}
		// A write after the read above is already queued as an event, and
		// a halt after the check above has moved the deadline, so the wait
		// misses neither. The events say only "written".
		if spinning {
			continue
		}
		r.waits.Add(1)
		r.asleep.Store(true)
		_, err = r.changes.Read(buf)
		r.asleep.Store(false)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

// keepFrom copies up to most of the file's bytes from *at on into keep,
// at the same offset, and moves *at past them. With raw set (while the
// rescue spins), the system calls are made without telling the scheduler,
// in pieces of at most rawPiece, which take microseconds: told, the
// scheduler hands the processor to the loop or the sender during a call
// longer than 20 µs, and the rescue waits for it back for milliseconds,
// the very ones in which logrotate truncates. (GOMAXPROCS is 1.)
func (r *rescue) keepFrom(at *int64, most int64, raw bool) (int, error) {
	if !raw {
		if _, err := unix.Seek(r.keepFd, *at, io.SeekStart); err != nil {
			return 0, err
		}
		return unix.Sendfile(r.keepFd, r.fd, at, int(min(most, 1<<20)))
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_LSEEK, uintptr(r.keepFd), uintptr(*at), io.SeekStart); errno != 0 {
		return 0, errno
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDFILE, uintptr(r.keepFd), uintptr(r.fd), uintptr(unsafe.Pointer(at)), uintptr(min(most, rawPiece)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// fstat is unix.Fstat, raw as keepFrom's calls are.
func (r *rescue) fstat(st *unix.Stat_t, raw bool) error {
	if !raw {
		return unix.Fstat(r.fd, st)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_FSTAT, uintptr(r.fd), uintptr(unsafe.Pointer(st)), 0); errno != 0 {
		return errno
	}
	return nil
}

// truncated looks at the file: whether it is shorter than the rescue has
// seen it (or cannot be looked at). Bytes read before a look that finds it
// not are the generation's being copied.
func (r *rescue) truncated(st *unix.Stat_t, raw bool) bool {
	if r.fstat(st, raw) != nil || r.shrunk(st.Size) {
		return true
	}
	r.pin.confirm()
	return false
}

// shrunk reports whether a file of size is shorter than the rescue has
// seen it: truncated, since it only grows until then (see seen).
func (r *rescue) shrunk(size int64) bool { return size < max(r.tailTo, r.seen) }

// keepPinned ends the pin as the rescue ends. After a truncation, the
// seen or one a last look finds, the pinned page holds what the writer
// added to it before the truncation: those bytes are kept after the
// newest ones read. The last line may be cut at the page's end, its rest
// written to a page no read reached; it is kept as far as it goes.
func (r *rescue) keepPinned() {
	defer r.pin.close()
	if r.pin == nil {
		return
	}
	var st unix.Stat_t
	if r.fstat(&st, false) != nil {
		return
	}
	if !r.cut && !r.shrunk(st.Size) {
		return // not truncated: the loop reads the file itself
	}
	kept := r.pin.harvest(r.tailTo, st.Size)
	if len(kept) == 0 {
		return
	}
	n, err := unix.Pwrite(r.keepFd, kept, r.tailTo)
	if err != nil || n != len(kept) {
		return
	}
	r.tailTo += int64(n)
	r.pinned = int64(n)
	r.read.Store(r.tailTo)
}

// keepBacklog keeps a piece of the loop's backlog, if any is left and
// fits under the cap, and returns its length. The piece is the
// generation's being copied only if a later look finds no truncation.
func (r *rescue) keepBacklog(raw bool) int64 {
	most := min(int64(r.piece), r.tailFrom-r.backlogTo, rescueCap-r.kept())
	if most <= 0 {
		return 0
	}
	n, _ := r.keepFrom(&r.backlogTo, most, raw)
	return int64(max(n, 0))
}

// frameRescued frames the lines fl's rescue kept beyond the loop's offset,
// before fl is taken for truncated. It returns the bytes that no read
// reached (a backlog the truncation came before): the copy has them.
// The last line kept is framed even without its newline: its end was
// written after the truncation, if ever.
func (f *Follower) frameRescued(ctx context.Context, fl *file) (unread, error) {
	r := f.guards.take(fl)
	if r == nil {
		return unread{}, f.readFromCopy(ctx, fl, -1)
	}
	defer r.keep.Close()
	if r.pinned > 0 {
		f.cfg.Log.Info().Str("path", fl.path).Int64("bytes", r.pinned).
			Msg("the rescue's pin of the file's last page kept what was written after its last read")
	}
	if err := f.frameKept(ctx, fl, r.keep, r.from, r.backlogTo, false); err != nil {
		return unread{}, err
	}
	if r.tailTo == r.tailFrom {
		// It kept no newest lines: it started after the truncation.
		return unread{}, f.readFromCopy(ctx, fl, -1)
	}
	var gap unread
	if fl.offset < r.tailFrom {
		if err := f.readFromCopy(ctx, fl, r.tailFrom); err != nil {
			return unread{}, err
		}
	}
	if fl.offset < r.tailFrom {
		gap = unread{from: fl.offset, to: r.tailFrom}
		if fl.long.active {
			// Cut off by the gap: the copy has it whole.
			gap.from = fl.long.start
			fl.long.reset()
		}
		// Records being assembled end where the gap begins.
		if err := f.flushFile(ctx, fl); err != nil {
			return unread{}, err
		}
		f.cfg.Log.Info().Str("path", fl.path).Int64("from", gap.from).Int64("to", gap.to).
			Msg("the truncation came before the rescue read this backlog; it is read from the copy, if the patterns match one")
		fl.offset = r.tailFrom
	}
	return gap, f.frameKept(ctx, fl, r.keep, r.tailFrom, r.tailTo, true)
}

// frameKept frames the lines a rescue kept in keep between from and to,
// beyond fl's offset. With last set, a trailing line without its newline
// is framed too.
func (f *Follower) frameKept(ctx context.Context, fl *file, keep *os.File, from, to int64, last bool) error {
	if fl.offset < from || fl.offset >= to {
		return nil
	}
	f.cfg.Log.Info().Str("path", fl.path).Int64("bytes", to-fl.offset).
		Msg("framing the lines a rescue kept: the truncation wiped them before the loop read them")
	return f.frameFrom(ctx, fl, keep, to, last)
}

// frameFrom frames the lines of fd, a stand-in for fl's truncated
// generation (what a rescue kept, or its copy), from fl's offset up to
// to. With last set, a trailing line without its newline is framed too.
func (f *Follower) frameFrom(ctx context.Context, fl *file, fd *os.File, to int64, last bool) error {
	f.win = window{fd: fd, off: fl.offset, end: to}
	f.br.Reset(&f.win)
	defer func() { f.win = window{} }()
	_, err := f.frameWindow(ctx, fl, true, last)
	return err
}
