// Command eager is the reference reader of issue 12's copytruncate claim:
// it follows one file, reading it at each inotify IN_MODIFY event from a
// thread that does nothing else, and starts again from 0 when the file
// shrinks. It keeps what it reads in memory and writes it to stdout when
// stopped: no checkpoints, no batching, no rotation by rename.
// bench/copytruncate.sh runs it in tailcar's place with READER=eager, to
// tell a loss that any reader outside the kernel suffers from one that is
// tailcar's.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	path := flag.String("file", "", "the file to follow")
	flag.Parse()
	if err := run(*path); err != nil {
		fmt.Fprintln(os.Stderr, "eager:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var r reader
	done := make(chan error, 1)
	go func() { done <- r.follow(path) }()
	select {
	case <-stop:
	case err := <-done:
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := os.Stdout.Write(r.kept)
	return err
}

// reader keeps what it reads in memory, so that a read costs nothing
// more than the read: it is written out when the process is stopped.
type reader struct {
	mu   sync.Mutex
	kept []byte
}

// follow returns only when it fails.
func (r *reader) follow(path string) error {
	runtime.LockOSThread()
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC) // blocking: the thread waits in read(2)
	if err != nil {
		return err
	}
	if _, err := unix.InotifyAddWatch(in, path, unix.IN_MODIFY); err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	events := make([]byte, 64<<10)
	var off int64
	var st unix.Stat_t
	for {
		for {
			n, err := unix.Pread(fd, buf, off)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			off += int64(n)
			r.mu.Lock()
			r.kept = append(r.kept, buf[:n]...)
			r.mu.Unlock()
		}
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Size < off {
			off = 0 // truncated: read the new generation
			continue
		}
		if _, err := unix.Read(in, events); err != nil && err != unix.EINTR {
			return err
		}
	}
}
