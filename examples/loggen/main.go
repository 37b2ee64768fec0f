// Command loggen writes realistic nginx access lines, numbered so that a
// test can tell exactly which ones arrived: every line carries seq=N.
//
//	loggen --log-type=nginx --path=/var/log/app/access.log --total-count=1000 --logs-per-sec=100
//
// It reopens its file on SIGHUP or SIGUSR1, as nginx does after logrotate
// renamed it, and can touch a file when done (the Job exit-file flow).
// --times records when each line was written, for bench/copytruncate.sh.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loggen:", err)
		os.Exit(1)
	}
}

type options struct {
	logType     string
	path        string
	total       int
	perSec      float64
	stdout      bool
	stderr      bool
	startSeq    int
	doneFile    string
	tag         string
	sizePadding int
	timesFile   string
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("loggen", flag.ContinueOnError)
	fs.StringVar(&o.logType, "log-type", "nginx", "kind of line: nginx")
	fs.StringVar(&o.path, "path", "", "append lines to this file")
	fs.IntVar(&o.total, "total-count", 100, "lines to write; 0 writes until stopped")
	fs.Float64Var(&o.perSec, "logs-per-sec", 10, "lines per second; 0 is as fast as possible")
	fs.BoolVar(&o.stdout, "stdout", false, "also write lines to stdout")
	fs.BoolVar(&o.stderr, "stderr", false, "also write lines to stderr")
	fs.IntVar(&o.startSeq, "start-seq", 1, "number of the first line")
	fs.StringVar(&o.doneFile, "done-file", "", "touch this file after the last line")
	fs.StringVar(&o.tag, "tag", "", "word put in every line, to tell several generators apart")
	fs.IntVar(&o.sizePadding, "pad", 0, "extra bytes in the user agent, for larger lines")
	fs.StringVar(&o.timesFile, "times", "", "at the end, write here one line per line written: its number, when its write began (Unix µs), "+
		"and 1 if it was the first written after the file shrank (paced, to --path only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.logType != "nginx" {
		return fmt.Errorf("unknown --log-type %q: only nginx", o.logType)
	}
	if o.path == "" && !o.stdout && !o.stderr {
		return fmt.Errorf("nowhere to write: give --path, --stdout or --stderr")
	}
	if o.timesFile != "" && (o.path == "" || o.perSec <= 0) {
		return fmt.Errorf("--times needs --path and --logs-per-sec: each line must be a write of its own")
	}
	return generate(o)
}

// sink is the file, reopened by path when asked, plus the std streams.
type sink struct {
	path  string
	file  *os.File
	buf   *bufio.Writer
	extra []io.Writer
}

func (s *sink) open() error {
	if s.path == "" {
		return nil
	}
	if s.file != nil {
		if err := s.buf.Flush(); err != nil {
			return err
		}
		s.file.Close()
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	s.file = f
	s.buf = bufio.NewWriterSize(f, 64<<10)
	return nil
}

func (s *sink) write(line []byte) error {
	if s.buf != nil {
		if _, err := s.buf.Write(line); err != nil {
			return err
		}
	}
	for _, w := range s.extra {
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

func (s *sink) flush() error {
	if s.buf == nil {
		return nil
	}
	return s.buf.Flush()
}

var (
	methods = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	paths   = []string{"/", "/api/v1/items", "/api/v1/cart", "/static/app.js", "/login", "/healthz"}
	codes   = []int{200, 200, 200, 200, 201, 204, 301, 404, 500}
	agents  = []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
		"curl/8.5.0",
	}
)

// writeTimes is what --times writes: each line's number, the time its
// write began, and whether the file had shrunk under it. A lost line is in
// no file, so this is where a bench finds when it was written. The file is
// opened with O_APPEND, so the offset after a write is the file's end: less
// than after the write before means a truncation came in between.
type writeTimes struct {
	text []byte
	end  int64
}

func (t *writeTimes) note(f *os.File, seq int, began time.Time) error {
	after, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("offset after line %d: %w", seq, err)
	}
	shrank := 0
	if after < t.end {
		shrank = 1
	}
	t.end = after
	t.text = fmt.Appendf(t.text, "%d %d %d\n", seq, began.UnixMicro(), shrank)
	return nil
}

func generate(o options) error {
	s := &sink{path: o.path}
	if o.stdout {
		s.extra = append(s.extra, os.Stdout)
	}
	if o.stderr {
		s.extra = append(s.extra, os.Stderr)
	}
	if err := s.open(); err != nil {
		return err
	}
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGHUP, syscall.SIGUSR1)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	rng := rand.New(rand.NewPCG(uint64(o.startSeq), 42))
	pad := make([]byte, o.sizePadding)
	for i := range pad {
		pad[i] = 'x'
	}
	tag := ""
	if o.tag != "" {
		tag = "&gen=" + o.tag
	}
	var times *writeTimes
	if o.timesFile != "" {
		times = &writeTimes{}
	}
	var line []byte
	start := time.Now()
	for n := 0; o.total == 0 || n < o.total; n++ {
		select {
		case <-reopen:
			if err := s.open(); err != nil {
				return err
			}
			if times != nil {
				times.end = 0 // a new file, not a truncated one
			}
		case <-stop:
			return s.flush()
		default:
		}
		if o.perSec > 0 {
			// Pace by the schedule, not by sleeping per line, so high rates
			// stay exact and a slow write does not drift the rate.
			due := start.Add(time.Duration(float64(n) / o.perSec * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				if err := s.flush(); err != nil {
					return err
				}
				time.Sleep(wait)
			}
		}
		now := time.Now().UTC()
		line = fmt.Appendf(line[:0], "10.%d.%d.%d - - [%s] \"%s %s?seq=%d%s HTTP/1.1\" %d %d \"-\" \"%s%s\"\n",
			rng.IntN(256), rng.IntN(256), rng.IntN(256), now.Format("02/Jan/2006:15:04:05 -0700"),
			methods[rng.IntN(len(methods))], paths[rng.IntN(len(paths))], o.startSeq+n, tag,
			codes[rng.IntN(len(codes))], 200+rng.IntN(20000), agents[rng.IntN(len(agents))], pad)
		if err := s.write(line); err != nil {
			return err
		}
		// Unpaced, lines are flushed in 64 KiB writes; paced, every line is
		// its own write, as an app logging as it goes.
		if o.perSec > 0 {
			if err := s.flush(); err != nil {
				return err
			}
		}
		if times != nil {
			if err := times.note(s.file, o.startSeq+n, now); err != nil {
				return err
			}
		}
	}
	if err := s.flush(); err != nil {
		return err
	}
	if times != nil {
		if err := os.WriteFile(o.timesFile, times.text, 0o644); err != nil {
			return err
		}
	}
	if o.doneFile != "" {
		if err := os.WriteFile(o.doneFile, nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}
