// Command floor is the least any shipper must do for W1: read a file line
// by line, wrap each line in a JSON object, gzip batches of 1 MiB and POST
// them. No tags, no checkpoints, no retries, no rotation. `make bench`
// runs it beside tailcar on the same machine, so tailcar's figures can be
// given as a ratio to this physical limit. With -follow it is W3's floor:
// it keeps reading the file as it grows, waking once per interval (no
// inotify, no timers but one sleep) to post what is new.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"
)

func main() {
	file := flag.String("file", "", "file to read")
	url := flag.String("url", "", "where to POST gzipped NDJSON")
	follow := flag.Duration("follow", 0, "keep reading the growing file, posting what is new every interval; 0 reads it once")
	flag.Parse()
	if err := run(*file, *url, *follow); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(file, url string, follow time.Duration) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var batch, body bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&body, gzip.BestSpeed)
	post := func() error {
		body.Reset()
		gz.Reset(&body)
		gz.Write(batch.Bytes())
		gz.Close()
		req, err := http.NewRequest(http.MethodPost, url, &body)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		batch.Reset()
		return nil
	}
	var partial []byte // a line still being written when followed
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF && follow > 0 {
			partial = append(partial, line...)
			if batch.Len() > 0 {
				if perr := post(); perr != nil {
					return perr
				}
			}
			time.Sleep(follow)
			continue
		}
		if len(partial) > 0 {
			line = append(partial, line...)
			partial = partial[:0]
		}
		if len(line) > 1 {
			batch.WriteString(`{"message":"`)
			for _, c := range line[:len(line)-1] {
				if c == '"' || c == '\\' {
					batch.WriteByte('\\')
				}
				batch.WriteByte(c)
			}
			batch.WriteString("\"}\n")
		}
		if batch.Len() >= 1<<20 || err != nil && batch.Len() > 0 {
			if perr := post(); perr != nil {
				return perr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
