package tailer

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// openRegular opens path for reading and returns it only if it is a
// regular file. O_NONBLOCK keeps a FIFO or a device swapped in under the
// name from blocking the open (a FIFO without a writer would wait
// forever); it changes nothing for regular files. O_NOFOLLOW refuses a
// path whose last element became a symlink since it was resolved.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	fd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		fd.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	return fd, fi, nil
}

// openOwn is openRegular for tailcar's own reading: the open event it
// causes in a watched directory is expected, so that it does not pass for
// a copier's.
func (f *Follower) openOwn(path string) (*os.File, os.FileInfo, error) {
	fd, fi, err := openRegular(path)
	if err == nil && f.watch != nil && f.watch.layout.watching(filepath.Dir(path)) {
		f.ownOpens[path]++
	}
	return fd, fi, err
}

// openFile opens fl at path and checks that it is still fl's file. It and
// closeFile are the only places that change the count of open files.
func (f *Follower) openFile(fl *file, path string) (os.FileInfo, error) {
	fd, fi, err := f.openOwn(path)
	if err != nil {
		return nil, err
	}
	if id, ok := idOf(fi); !ok || id != fl.id {
		fd.Close()
		return nil, fmt.Errorf("%s is another file now", path)
	}
	fl.fd = fd
	f.open++
	f.guards.add(fl, fd)
	return fi, nil
}

// closeFile closes fl's descriptor, if open.
func (f *Follower) closeFile(fl *file) {
	f.guards.remove(fl)
	if fl.fd != nil {
		fl.fd.Close()
		fl.fd = nil
		f.open--
	}
}

func (f *Follower) closeAll() {
	for _, fl := range f.files {
		f.closeFile(fl)
	}
}

// closeIdle closes the least recently active closable files that are
// read to their end while more than MaxOpen are open. They are reopened,
// by identity, when they change.
func (f *Follower) closeIdle() {
	if f.open <= f.cfg.MaxOpen {
		return
	}
	var idle []*file
	for _, fl := range f.files {
		if f.closable(fl) {
			idle = append(idle, fl)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastActive.Before(idle[j].lastActive) })
	for _, fl := range idle {
		if f.open <= f.cfg.MaxOpen {
			break
		}
		if fi, err := fl.fd.Stat(); err != nil || fi.Size() != fl.offset {
			continue
		}
		f.closeFile(fl)
	}
}

// reopen opens a file closed while idle, by its name, and checks it is
// still the same file; if the name now leads elsewhere, the file is
// looked for by identity.
func (f *Follower) reopen(fl *file) bool {
	if _, err := f.openFile(fl, fl.real); err == nil {
		return true
	}
	f.needScan = true
	return f.findMoved(fl)
}
