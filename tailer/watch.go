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
	fd     int // for inotify_add_watch; file.Fd() would make reads blocking
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
}

// newInotify returns an instance for mask whose channel holds queued
// events (none: the reader waits for the loop, and the kernel merges a
// file's repeated events meanwhile).
func newInotify(mask uint32, queued int) (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// Non-blocking, so the runtime's poller waits for it and Close wakes
	// a blocked Read: the reading goroutine ends with the instance.
	return &inotify{
		fd: fd, file: os.NewFile(uintptr(fd), "inotify"), mask: mask, events: make(chan notifyEvent, queued),
		dirs: make(map[int32]string), wds: make(map[string]int32),
	}, nil
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
		n, err := in.file.Read(buf)
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

func (in *inotify) close() error { return in.file.Close() }

// watches is the pair of instances, or nil channels when inotify is not
// available and changes are found by the rescan alone.
type watches struct {
	change, layout *inotify
}

func newWatches() (*watches, error) {
	change, err := newInotify(changeMask, 0)
	if err != nil {
		return nil, err
	}
	change.demand = make(chan struct{}, 1)
	// Layout events are few and merge little; queued, they are read from
	// the kernel as they come, so that a copier's open is acted on at once
	// (rescue.go) even while the loop is busy.
	layout, err := newInotify(layoutMask, layoutQueue)
	if err != nil {
		change.close()
		return nil, err
	}
	return &watches{change: change, layout: layout}, nil
}

// add watches dir in both instances.
func (w *watches) add(dir string) error {
	return errors.Join(w.change.add(dir), w.layout.add(dir))
}

func (w *watches) close() {
	w.change.close()
	w.layout.close()
}
