package tailer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tailcar watches directories, not files: one watch per directory that
// holds a followed file or is named by a pattern, in each of two inotify
// instances.
//
//   - changes (IN_MODIFY) are let settle: while the follow loop does not
//     take them, the reading goroutine blocks and the kernel merges a
//     file's repeated events into one, so a line-by-line writer costs no
//     wake-up per line;
//   - layout events (files created, moved, deleted, and opened) are taken
//     at once. An open by another process is how a copier announces
//     itself: logrotate's copytruncate opens the file, copies it and
//     truncates it, and the lines written between the copy and the
//     truncation are lost unless read before it. A file opened by someone
//     else is read at each change for a while (see file.riskUntil).
//
// fsnotify, used before, reports neither opens nor lets one kind of event
// wait while the other is taken; both need golang.org/x/sys/unix.
const (
	changeMask = unix.IN_MODIFY
	layoutMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_OPEN | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
)

// notifyEvent is one inotify event: the watch it came from, what
// happened, and the name in the watched directory (empty for the
// directory itself).
type notifyEvent struct {
	wd   int32
	mask uint32
	name string
}

// inotify is one inotify instance whose events a goroutine reads into a
// channel. The watch tables belong to the follow loop.
//
// The reading goroutine waits in poll(2), a blocking system call, rather
// than in Go's network poller: while the follow loop polls a file that a
// copier may truncate, it spins, yielding the processor between reads, and
// the network poller is not consulted while a goroutine is runnable. A
// thread blocked in poll(2) is woken by the kernel, whatever the loop does.
type inotify struct {
	fd     int
	wake   int // an eventfd: written to end the reading goroutine
	mask   uint32
	events chan notifyEvent
	dirs   map[int32]string
	wds    map[string]int32
}

func newInotify(mask uint32) (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &inotify{
		fd: fd, wake: wake, mask: mask, events: make(chan notifyEvent),
		dirs: make(map[int32]string), wds: make(map[string]int32),
	}, nil
}

// run reads events into in.events until stop is called or done is
// closed. While nobody takes an event it blocks on the send, and the
// kernel queues (and merges) what follows.
func (in *inotify) run(done <-chan struct{}) {
	defer close(in.events)
	buf := make([]byte, 64<<10)
	fds := []unix.PollFd{{Fd: int32(in.fd), Events: unix.POLLIN}, {Fd: int32(in.wake), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		n, err := unix.Read(in.fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameEnd := off + unix.SizeofInotifyEvent + int(raw.Len)
			if nameEnd > n {
				break
			}
			name := buf[off+unix.SizeofInotifyEvent : nameEnd]
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			ev := notifyEvent{wd: raw.Wd, mask: raw.Mask, name: string(name)}
			off = nameEnd
			select {
			case in.events <- ev:
			case <-done:
				return
			}
		}
	}
}

// stop wakes the reading goroutine so that it returns.
func (in *inotify) stop() {
	var one = [8]byte{1}
	_, _ = unix.Write(in.wake, one[:])
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
		in.dirs[wd] = dir
		in.wds[dir] = wd
	}
	return nil
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
		delete(in.dirs, wd)
		delete(in.wds, dir)
	}
}

// watching reports whether dir is watched.
func (in *inotify) watching(dir string) bool {
	_, ok := in.wds[dir]
	return ok
}

// close releases the instance; call it once the reading goroutine has
// returned.
func (in *inotify) close() error {
	return errors.Join(unix.Close(in.fd), unix.Close(in.wake))
}

// watches is the pair of instances, or nil channels when inotify is not
// available and changes are found by the rescan alone.
type watches struct {
	change, layout *inotify
}

func newWatches() (*watches, error) {
	change, err := newInotify(changeMask)
	if err != nil {
		return nil, err
	}
	layout, err := newInotify(layoutMask)
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

// stop ends both reading goroutines; close releases the instances after.
func (w *watches) stop() {
	w.change.stop()
	w.layout.stop()
}

func (w *watches) close() {
	w.change.close()
	w.layout.close()
}
