package tailer

import (
	"bytes"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A rescue that is off the processor when the writer's last lines come
// loses them: logrotate truncates the file microseconds to a millisecond
// later, and no read can follow. A page pin keeps them without a read.
//
// The writer's bytes go into the page cache page that holds the file's
// end. vmsplice of that page, mapped from the file, puts a reference to
// the page itself into a pipe, not a copy of its bytes: whatever the
// writer adds to the page later is in the pipe too. A truncation takes
// the page out of the file but cannot free it while the pipe holds it,
// and the writer's next bytes go to a new page (writes and truncations of
// one file are serialized by its inode lock). Reading the pipe after the
// truncation gives the page as the last write before the truncation left
// it: the lines the writer added after the rescue's last read, up to the
// page's end. The bytes beyond a file's end in its last page are zeros, so
// the written ones end at the first zero byte.
//
// What a pin cannot keep is a page the writer began after the rescue's
// last look: one pin covers the lines of one page, 4 KiB or about 40 lines
// of 100 bytes.
//
// The behavior is the kernel's, not a documented promise; where it does
// not hold (a file system that cannot be mapped, a kernel that copies),
// the pin keeps nothing or nothing is read from it, and the rescue keeps
// what its reads kept, as before. TestPagePin_KeepsWhatTheTruncationWipes
// checks it on the machine the tests run on.
type pagePin struct {
	// mem is the file mapped from base on. Go never touches it: a page
	// beyond the file's end would fault (SIGBUS). Only its addresses go to
	// vmsplice, which reports such a page as an error instead.
	mem  []byte
	base int64
	size int64 // the page size
	// pipe holds at most one page: the one at page.
	pipe [2]int
	page int64 // the pinned page's offset in the file; -1 when none
	// valid: a look at the file after the pin found it not truncated, so
	// the page is the generation's the rescue keeps.
	valid bool
	buf   []byte // one page, what the pipe gives back
}

// newPagePin maps length bytes of fd from the page holding from on.
func newPagePin(fd int, from, length int64) (*pagePin, error) {
	size := int64(os.Getpagesize())
	base := from &^ (size - 1)
	length = (from - base + length + size - 1) &^ (size - 1)
	mem, err := unix.Mmap(fd, base, int(length), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	p := &pagePin{mem: mem, base: base, size: size, page: -1, buf: make([]byte, size)}
	if err := unix.Pipe2(p.pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("pipe: %w", err)
	}
	return p, nil
}

// close lets go of the page, the pipe and the mapping.
func (p *pagePin) close() {
	if p == nil {
		return
	}
	unix.Close(p.pipe[0])
	unix.Close(p.pipe[1])
	_ = unix.Munmap(p.mem)
}

// hold pins the page that holds offset at, the file's end, and lets go of
// the page pinned before. It reports whether it pinned a page it did not
// hold: a look at the file must then confirm it. With raw set, the system
// calls are made without telling the scheduler, as the rescue's reads
// are while it spins (rescue.keepFrom).
func (p *pagePin) hold(at int64, raw bool) bool {
	if p == nil {
		return false
	}
	page := at &^ (p.size - 1)
	if page == p.page || page < p.base || page+p.size > p.base+int64(len(p.mem)) {
		return false
	}
	if p.page >= 0 {
		if !p.take(raw) {
			return false // the pipe still holds the old page, which fills it
		}
		p.page = -1
	}
	p.valid = false
	iov := unix.Iovec{Base: &p.mem[page-p.base]}
	iov.SetLen(int(p.size))
	// A page wholly beyond the file's end (at on a page boundary, nothing
	// written there yet) is refused with EFAULT: the next write creates
	// it, and the rescue reads that write before it pins again.
	call := unix.Syscall6
	if raw {
		call = unix.RawSyscall6
	}
	n, _, errno := call(unix.SYS_VMSPLICE, uintptr(p.pipe[1]), uintptr(unsafe.Pointer(&iov)), 1, unix.SPLICE_F_NONBLOCK, 0, 0)
	if errno != 0 {
		return false
	}
	if int64(n) != p.size {
		p.take(raw) // part of the page only: dropped, not a partial view
		return false
	}
	p.page = page
	return true
}

// confirm records a look at the file, made after the pin, that found no
// truncation.
func (p *pagePin) confirm() {
	if p != nil && p.page >= 0 {
		p.valid = true
	}
}

// harvest reads the pinned page once the file has been truncated, and
// returns its written bytes from offset from on. size is the file's size
// now, after the truncation. The page is the truncated generation's if a
// look confirmed the pin, or if the file is not yet as long as the page's
// offset: a page of the next generation was within the file when pinned,
// and the file only grows until its next truncation. Otherwise, or
// unless from lies in the page, it returns nil.
func (p *pagePin) harvest(from, size int64) []byte {
	if p == nil || p.page < 0 || (!p.valid && size > p.page) || from < p.page || from >= p.page+p.size {
		return nil
	}
	written := p.buf[from-p.page:]
	taken := p.take(false)
	p.page, p.valid = -1, false
	if !taken {
		return nil
	}
	if i := bytes.IndexByte(written, 0); i >= 0 {
		written = written[:i]
	}
	return written
}

// take reads the page the pipe holds into buf, and reports whether it got
// it whole. With raw set, read(2) is made without telling the scheduler.
func (p *pagePin) take(raw bool) bool {
	if !raw {
		n, err := unix.Read(p.pipe[0], p.buf)
		return err == nil && int64(n) == p.size
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(p.pipe[0]), uintptr(unsafe.Pointer(&p.buf[0])), uintptr(len(p.buf)))
	return errno == 0 && int64(n) == p.size
}
