// Command nxadm measures github.com/nxadm/tail v1.4.11, the tailer the
// design card named, on the rotation scenarios tailcar's own tailer is
// tested on, and its cost per line against a bufio.Reader.ReadSlice loop.
// It prints a markdown table: the evidence behind "Why tailcar has its own
// tailer" in the README. It is a module of its own so that tailcar does not
// depend on the package it measured and dropped.
//
//	go run . [-runs 3]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/nxadm/tail"
)

var seqRE = regexp.MustCompile(`seq=(\d+)`)

func line(n int) string {
	return fmt.Sprintf("10.0.0.%d - - [25/Nov/2026:10:00:00 +0000] \"GET /item?seq=%d HTTP/1.1\" 200 %d\n", n%250, n, 100+n%900)
}

// writer appends numbered lines to an open file.
type writer struct {
	f *os.File
	n int
}

func (w *writer) lines(count int) {
	bw := bufio.NewWriterSize(w.f, 1<<16)
	for range count {
		w.n++
		bw.WriteString(line(w.n))
	}
	must(bw.Flush())
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func create(path string) *os.File {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	must(err)
	return f
}

// scenario writes to a file while nxadm/tail follows it, and returns how
// many numbered lines were written, and how many of them it lost and
// repeated.
type scenario struct {
	name   string
	config tail.Config
	run    func(dir, path string) int // returns lines written
}

func follow() tail.Config {
	// tail -F: follow by name across rotation.
	return tail.Config{Follow: true, ReOpen: true, MustExist: false, Logger: tail.DiscardingLogger}
}

func scenarios() []scenario {
	poll := follow()
	poll.Poll = true
	partial := follow()
	partial.CompleteLines = false
	complete := follow()
	complete.CompleteLines = true
	return []scenario{
		{"rename during a burst", follow(), func(dir, path string) int {
			w := &writer{f: create(path)}
			w.lines(50000)
			must(os.Rename(path, path+".1"))
			w.f.Close()
			w.f = create(path)
			w.lines(1000)
			w.f.Close()
			return w.n
		}},
		{"app writes to the renamed file", follow(), func(dir, path string) int {
			w := &writer{f: create(path)}
			w.lines(1000)
			time.Sleep(200 * time.Millisecond)
			must(os.Rename(path, path+".1"))
			w.lines(500) // the app has not reopened yet
			time.Sleep(200 * time.Millisecond)
			w.f.Close()
			w.f = create(path)
			w.lines(1000)
			w.f.Close()
			return w.n
		}},
		{"rename during a backlog", follow(), func(dir, path string) int {
			w := &writer{f: create(path)}
			w.lines(300000)
			must(os.Rename(path, path+".1"))
			w.f.Close()
			w.f = create(path)
			w.lines(1000)
			time.Sleep(time.Second)
			w.lines(1000)
			w.f.Close()
			return w.n
		}},
		{"delete while the app writes", follow(), func(dir, path string) int {
			w := &writer{f: create(path)}
			w.lines(1000)
			time.Sleep(200 * time.Millisecond)
			must(os.Remove(path))
			w.lines(500)
			w.f.Close()
			w.f = create(path)
			w.lines(1000)
			w.f.Close()
			return w.n
		}},
		{"copytruncate under load", follow(), func(dir, path string) int {
			w := &writer{f: create(path)}
			for range 3 {
				w.lines(20000)
				src, err := os.ReadFile(path)
				must(err)
				must(os.WriteFile(path+".1", src, 0o644))
				must(os.Truncate(path, 0))
			}
			w.lines(1000)
			w.f.Close()
			return w.n
		}},
		{"truncate + regrow (poll mode)", poll, func(dir, path string) int {
			w := &writer{f: create(path)}
			w.lines(100)
			time.Sleep(time.Second)
			var buf []byte
			for i := 101; i <= 400; i++ {
				buf = append(buf, line(i)...)
			}
			must(os.WriteFile(path, buf, 0o644))
			w.n = 400
			w.f.Close()
			return w.n
		}},
		{"split writes, CompleteLines=false", partial, splitWrites},
		{"split writes, CompleteLines=true", complete, splitWrites},
	}
}

// splitWrites writes each line in two writes with a pause between, as an
// app with an unbuffered logger does.
func splitWrites(dir, path string) int {
	f := create(path)
	for i := 1; i <= 20; i++ {
		l := line(i)
		f.WriteString(l[:20])
		time.Sleep(30 * time.Millisecond)
		f.WriteString(l[20:])
	}
	f.Close()
	return 20
}

// measure runs one scenario and counts what nxadm/tail delivered: a line
// counts only if it arrives whole.
func measure(s scenario) (written, lost, repeated int) {
	dir, err := os.MkdirTemp("", "nxadm")
	must(err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "access.log")
	must(os.WriteFile(path, nil, 0o644))
	t, err := tail.TailFile(path, s.config)
	must(err)
	seen := make(map[int]int)
	got := make(chan struct{}, 1)
	go func() {
		for l := range t.Lines {
			if l.Err != nil {
				continue
			}
			if m := seqRE.FindStringSubmatch(l.Text); m != nil && len(l.Text) == len(line(atoi(m[1])))-1 {
				seen[atoi(m[1])]++
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	written = s.run(dir, path)
	// Stop once nothing has arrived for 3 s (or after 60 s).
	deadline := time.After(60 * time.Second)
	for quiet := false; !quiet; {
		select {
		case <-got:
		case <-time.After(3 * time.Second):
			quiet = true
		case <-deadline:
			quiet = true
		}
	}
	t.Stop()
	t.Cleanup()
	for i := 1; i <= written; i++ {
		switch n := seen[i]; {
		case n == 0:
			lost++
		case n > 1:
			repeated += n - 1
		}
	}
	return written, lost, repeated
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// costPerLine compares reading 1,000,000 lines with nxadm/tail (no follow)
// and with a bufio.Reader.ReadSlice loop.
func costPerLine() (nxadmNs, sliceNs float64) {
	dir, err := os.MkdirTemp("", "nxadm-cost")
	must(err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "big.log")
	w := &writer{f: create(path)}
	const n = 1000000
	w.lines(n)
	w.f.Close()

	start := time.Now()
	t, err := tail.TailFile(path, tail.Config{Follow: false, Logger: tail.DiscardingLogger})
	must(err)
	count := 0
	for range t.Lines {
		count++
	}
	nxadmNs = float64(time.Since(start).Nanoseconds()) / float64(count)

	start = time.Now()
	f, err := os.Open(path)
	must(err)
	br := bufio.NewReaderSize(f, 64<<10)
	count = 0
	for {
		_, err := br.ReadSlice('\n')
		if err == io.EOF {
			break
		}
		count++
	}
	f.Close()
	sliceNs = float64(time.Since(start).Nanoseconds()) / float64(count)
	return nxadmNs, sliceNs
}

func main() {
	runs := flag.Int("runs", 3, "runs per scenario; the table shows the worst")
	flag.Parse()
	fmt.Println("| scenario (nxadm/tail v1.4.11, tail -F mode) | lines written | lost (worst of runs) | repeated (worst) |")
	fmt.Println("|---|---|---|---|")
	for _, s := range scenarios() {
		worstLost, worstRep, written := 0, 0, 0
		for range *runs {
			w, l, r := measure(s)
			written = w
			worstLost, worstRep = max(worstLost, l), max(worstRep, r)
		}
		fmt.Printf("| %s | %d | %d | %d |\n", s.name, written, worstLost, worstRep)
	}
	nx, rs := costPerLine()
	fmt.Printf("\nCost per line reading 1,000,000 lines: nxadm/tail %.0f ns, bufio.Reader.ReadSlice %.0f ns (%.0f×).\n", nx, rs, nx/rs)
}
