// Command nginxload sends numbered GET requests (/item?seq=1 … /item?seq=N)
// to a web server at a steady rate over one kept-alive connection, so that
// its access log is written one line per request: issue 12's copytruncate
// scenario with a real nginx (bench/copytruncate.sh, WRITER=nginx).
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	url := flag.String("url", "", "the server's base URL, e.g. http://127.0.0.1:8080")
	total := flag.Int("n", 30000, "requests to send")
	rate := flag.Int("rate", 3000, "requests per second")
	flag.Parse()
	if err := run(*url, *total, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "nginxload:", err)
		os.Exit(1)
	}
}

func run(url string, total, rate int) error {
	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	for seq := 1; seq <= total; seq++ {
		// Request seq is due at start + seq/rate: a late request is sent at
		// once, so the average rate holds.
		if wait := time.Until(start.Add(time.Duration(seq) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		resp, err := client.Get(fmt.Sprintf("%s/item?seq=%d", url, seq))
		if err != nil {
			return fmt.Errorf("request %d: %w", seq, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return nil
}
