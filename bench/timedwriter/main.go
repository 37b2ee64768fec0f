// Command timedwriter appends numbered nginx-like lines to a file at a steady
// rate, one write per line, and puts in each line the wall-clock time in
// microseconds at which its write began (us=…). It also tells when the file
// was truncated under it: its offset after a write (O_APPEND puts it at the
// file's end) is then smaller than after the write before. Since a lost line
// is in no file, -times writes "seq microseconds first" for every line to a
// file of its own once the last line is written; first is 1 for the first
// line written after a truncation. bench/copytruncate.sh (WRITER=timed) uses
// them to show how long before a truncation the lines a copytruncate loses
// were written, without tracing logrotate: a ptrace stop at its ftruncate
// would widen the very window it measures.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

func main() {
	path := flag.String("path", "", "append lines to this file")
	total := flag.Int("n", 24000, "lines to write")
	rate := flag.Int("rate", 3000, "lines per second")
	times := flag.String("times", "", "write each line's number and write time here at the end")
	flag.Parse()
	if err := run(*path, *times, *total, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "timedwriter:", err)
		os.Exit(1)
	}
}

func run(path, times string, total, rate int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	var line, written []byte
	var end int64
	for seq := 1; seq <= total; seq++ {
		// Line seq is due at start + seq/rate; a late line is written at once.
		if wait := time.Until(start.Add(time.Duration(seq) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		now := time.Now()
		line = append(line[:0], `127.0.0.1 - - [`...)
		line = now.AppendFormat(line, "02/Jan/2006:15:04:05 -0700")
		line = append(line, `] "GET /item?seq=`...)
		line = strconv.AppendInt(line, int64(seq), 10)
		line = append(line, `&us=`...)
		line = strconv.AppendInt(line, now.UnixMicro(), 10)
		line = append(line, " HTTP/1.1\" 200 3 \"-\" \"timedwriter\"\n"...)
		if _, err := f.Write(line); err != nil {
			return fmt.Errorf("line %d: %w", seq, err)
		}
		after, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return fmt.Errorf("offset after line %d: %w", seq, err)
		}
		first := 0
		if after < end {
			first = 1
		}
		end = after
		written = fmt.Appendf(written, "%d %d %d\n", seq, now.UnixMicro(), first)
	}
	if times == "" {
		return nil
	}
	return os.WriteFile(times, written, 0o644)
}
