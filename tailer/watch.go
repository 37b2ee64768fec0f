package tailer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tailcar watches directories, not files: one watch per directory that
// holds a followed file or is named by a pattern, in each of two inotify
// instances.
//
//   - changes (IN_MODIFY) are let settle: they are read from the kernel
//     only when the follow loop asks for them, so while it lets them
//     settle the kernel merges a file's repeated events into one, and a
//     line-by-line writer costs no wake-up per line;
//   - layout events (files created, moved, deleted, and opened) are taken
//     at once. An open by another process is how a copier announces
//     itself: logrotate's copytruncate opens the file, copies it and
//     truncates it, and the lines written between the copy and the
//     truncation are lost unless read before it. A file opened by someone
//     else is rescued (rescue.go), and read at each change for a while
//     (see file.riskUntil).
//
// fsnotify, used before, reports neither opens nor lets one kind of event
// wait while the other is taken; both need golang.org/x/sys/unix.
const (
	changeMask = unix.IN_MODIFY
	layoutMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_OPEN | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
)

// layoutQueue is how many layout events wait for the loop before their
// reader waits too.
const layoutQueue = 1024

// notifyEvent is one inotify event: the watch it came from, what
// happened, and the name in the watched directory (empty for the
// directory itself).
type notifyEvent struct {
	wd   int32
	mask uint32
	name string
}

// inotify is one inotify instance whose events a goroutine reads into a
// channel. The watch tables are written by the follow loop only, under mu,
// so that the reading goroutine may look a name up too.
type inotify struct {
	fd int // for inotify_add_watch; file.Fd() would make reads blocking
	// file is fd in the runtime's poller, for an instance whose events are
	// read as they come. An instance read on demand has none: see wait.
	file   *os.File
	mask   uint32
	events chan notifyEvent
	// demand, when set, is the loop asking for events: the reader reads
	// the kernel's queue only then. Without it, the reader would wake at
	// the first write after each hand-over only to wait on the send.
	demand chan struct{}
	mu     sync.Mutex
	dirs   map[int32]string
	wds    map[string]int32
	// waiting is the duplicate of fd the reader waits on, and closed says
	// that it must not wait any more; both under mu.
	waiting *os.File
	closed  bool
}

// newInotify returns an instance for mask whose channel holds queued
// events. With onDemand set, its reader reads only when the loop asks
// (demand), and the kernel merges a file's repeated events meanwhile.
func newInotify(mask uint32, queued int, onDemand bool) (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	in := &inotify{fd: fd, mask: mask, events: make(chan notifyEvent, queued), dirs: make(map[int32]string), wds: make(map[string]int32)}
	if onDemand {
		in.demand = make(chan struct{}, 1)
	} else {
		// Non-blocking, so the runtime's poller waits for it and Close
		// wakes a blocked Read: the reading goroutine ends with the
		// instance.
		in.file = os.NewFile(uintptr(fd), "inotify")
	}
	return in, nil
}

// run reads events into in.events until the instance is closed or done
// is closed. While the channel is full it blocks on the send, and the
// kernel queues (and merges) what follows. opened, if set, is called with
// the path of each open event as soon as it is read.
func (in *inotify) run(done <-chan struct{}, opened func(path string, now time.Time)) {
	defer close(in.events)
	buf := make([]byte, 64<<10)
	for {
		if in.demand != nil {
			select {
			case <-in.demand:
			case <-done:
				return
			}
		}
		n, err := in.read(buf)
		if err != nil {
			return
		}
		sent := in.split(buf[:n], opened, func(ev notifyEvent) bool {
			select {
			case in.events <- ev:
				return true
			case <-done:
				return false
			}
		})
		if !sent {
			return
		}
	}
}

// read reads the events the kernel holds, waiting for one if there are
// none yet.
func (in *inotify) read(buf []byte) (int, error) {
	if in.file != nil {
		return in.file.Read(buf)
	}
	for {
		n, err := unix.Read(in.fd, buf)
		switch err {
		case nil:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return in.wait(buf)
		}
		return 0, os.NewSyscallError("read", err)
	}
}

// wait reads the next events of an instance read on demand, through a
// duplicate of fd that is in the runtime's poller only for this wait. An
// instance in the poller at all times woke the poller's thread at the
// first change after each read, with nobody waiting for it: once a
// second under a steady writer, one wake-up in four of an otherwise idle
// tailcar's (bench W3).
func (in *inotify) wait(buf []byte) (int, error) {
	dup, err := unix.FcntlInt(uintptr(in.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("fcntl", err)
	}
	waiting := os.NewFile(uintptr(dup), "inotify") // non-blocking, as fd is: into the poller
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		waiting.Close()
		return 0, os.ErrClosed
	}
	in.waiting = waiting
	in.mu.Unlock()
	n, err := waiting.Read(buf)
	in.mu.Lock()
	in.waiting = nil
	in.mu.Unlock()
	waiting.Close()
	return n, err
}

// split cuts buf, read from the instance, into events and hands each to
// each, until each returns false; opened, if set, is called first for
// each open event. It reports whether every event was handed over.
func (in *inotify) split(buf []byte, opened func(path string, now time.Time), each func(notifyEvent) bool) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameEnd := off + unix.SizeofInotifyEvent + int(raw.Len)
		if nameEnd > len(buf) {
			break
		}
		name := buf[off+unix.SizeofInotifyEvent : nameEnd]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		ev := notifyEvent{wd: raw.Wd, mask: raw.Mask, name: string(name)}
		off = nameEnd
		if opened != nil && ev.mask&(unix.IN_OPEN|unix.IN_ISDIR) == unix.IN_OPEN {
			if path, ok := in.lookup(ev); ok {
				opened(path, time.Now())
			}
		}
		if !each(ev) {
			return false
		}
	}
	return true
}

// readNow reads what events the kernel holds, without waiting: 0 when
// none.
func (in *inotify) readNow(buf []byte) int {
	n, err := unix.Read(in.fd, buf)
	if err != nil {
		return 0
	}
	return n
}

// add watches dir.
func (in *inotify) add(dir string) error {
	if _, ok := in.wds[dir]; ok {
		return nil
	}
	w, err := unix.InotifyAddWatch(in.fd, dir, in.mask)
	wd := int32(w)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	// The same directory under a second name gets the same watch; its
	// events keep the first name, and the rescan covers the second.
	if _, dup := in.dirs[wd]; !dup {
		in.mu.Lock()
		in.dirs[wd] = dir
		in.wds[dir] = wd
		in.mu.Unlock()
	}
	return nil
}

// lookup is path for the reading goroutine.
func (in *inotify) lookup(ev notifyEvent) (string, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.path(ev)
}

// path is the path an event names, and whether its watch is known.
func (in *inotify) path(ev notifyEvent) (string, bool) {
	dir, ok := in.dirs[ev.wd]
	if !ok {
		return "", false
	}
	if ev.name == "" {
		return dir, true
	}
	return filepath.Join(dir, ev.name), true
}

// removed forgets a watch the kernel dropped (its directory is gone).
func (in *inotify) removed(wd int32) {
	if dir, ok := in.dirs[wd]; ok {
		in.mu.Lock()
		delete(in.dirs, wd)
		delete(in.wds, dir)
		in.mu.Unlock()
	}
}

// watching reports whether dir is watched.
func (in *inotify) watching(dir string) bool {
	_, ok := in.wds[dir]
	return ok
}

// close ends the instance and wakes its reader. An instance read on
// demand keeps fd, which its reader may be reading, until release.
func (in *inotify) close() {
	if in.file != nil {
		in.file.Close()
		return
	}
	in.mu.Lock()
	in.closed = true
	waiting := in.waiting
	in.mu.Unlock()
	if waiting != nil {
		waiting.Close()
	}
}

// release closes an instance read on demand, once its reader has ended
// (or never started).
func (in *inotify) release() {
	if in.file == nil {
		unix.Close(in.fd)
	}
}

// watches is the pair of instances, or nil channels when inotify is not
// available and changes are found by the rescan alone.
type watches struct {
	change, layout *inotify
}

func newWatches() (*watches, error) {
	change, err := newInotify(changeMask, 0, true)
	if err != nil {
		return nil, err
	}
	// Layout events are few and merge little; queued, they are read from
	// the kernel as they come, so that a copier's open is acted on at once
	// (rescue.go) even while the loop is busy.
	layout, err := newInotify(layoutMask, layoutQueue, false)
	if err != nil {
		change.release()
		return nil, err
	}
	return &watches{change: change, layout: layout}, nil
}

// add watches dir in both instances.
func (w *watches) add(dir string) error {
	return errors.Join(w.change.add(dir), w.layout.add(dir))
}

// close ends both instances and wakes their readers; release, once they
// have ended, lets go of what remains.
func (w *watches) close() {
	w.change.close()
	w.layout.close()
}

func (w *watches) release() {
	w.change.release()
	w.layout.release()
}
