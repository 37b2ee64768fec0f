package main

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// seriesLine is a sample in the Prometheus text format: a name, optional
// labels with escaped values, a value.
var seriesLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^"\\\n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^"\\\n])*")*\})? [-+0-9.eE]+(Inf)?$`)

// Ensure a label value is always valid in the text format: escaped, and
// valid UTF-8 even for a file name that is not (one invalid byte makes
// Prometheus refuse the whole scrape). Issue 12, 3.12.
func TestEscapeLabel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\\b\"c\nd", `a\\b\"c\nd`},
		{"/logs/caf\xe9.log", "/logs/caf\uFFFD.log"},
		{"/logs/\xff\xfe\n.log", "/logs/\uFFFD\\n.log"},
	} {
		got := escapeLabel(tc.in)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("escapeLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !seriesLine.MatchString(`m{path="` + got + `"} 1`) {
			t.Errorf("escapeLabel(%q) = %q is not a valid label value", tc.in, got)
		}
	}
}

// waitForMetrics waits until tailcar's metrics server at addr answers
// /healthz with 200.
func waitForMetrics(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, 20*time.Second, "the metrics server", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// scrape reads /metrics into series name → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			continue
		}
		if !seriesLine.MatchString(l) {
			t.Fatalf("not a Prometheus text-format series: %q", l)
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", l)
		}
		out[l[:i]] = v
	}
	return out
}

// Ensure the counters equal what happened: every line written is read and
// shipped; one rename, a burst of three 503s and one overlong line move
// the rotation, retry and drop counters by exactly one, three and one;
// per-file lag series exist only for followed files; /healthz agrees with
// the probe.
func TestMetrics_CountersMatchWhatHappened(t *testing.T) {
	var mu sync.Mutex
	requests, failures, received := 0, 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		requests++
		if requests >= 2 && requests <= 4 {
			failures++
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body, _ := io.ReadAll(zr)
		received += strings.Count(string(body), "\n")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	got := func() int { mu.Lock(); defer mu.Unlock(); return received }

	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	addr := freePort(t)
	p := startTailcar(t, map[string]string{
		"TAILCAR_PATHS": log, "TAILCAR_SINK": "http", "TAILCAR_SINK_URL": srv.URL,
		"TAILCAR_METRICS_ADDR": addr, "TAILCAR_MAX_RECORD_BYTES": "1KiB",
		"TAILCAR_BATCH_WAIT": "50ms", "TAILCAR_BATCH_BYTES": "16KiB", "TAILCAR_DRAIN_DELAY": "0s",
	})
	waitForMetrics(t, addr)

	appendLines(t, log, 1, 499)
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "seq=500 %s\n", strings.Repeat("x", 5000)) // one record over the cap
	f.Close()
	appendLines(t, log, 501, 1000)
	waitFor(t, 30*time.Second, "1000 records", func() bool { return got() >= 1000 })

	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, log, 1001, 2000)
	waitFor(t, 30*time.Second, "2000 records", func() bool { return got() >= 2000 })
	// The receiver counts a batch before tailcar has its answer: the
	// counters are due once tailcar has taken the acknowledgement.
	var m map[string]float64
	waitFor(t, 10*time.Second, "tailcar to count the last batch acknowledged", func() bool {
		m = scrape(t, addr)
		return m["tailcar_records_shipped_total"] >= 2000
	})
	mu.Lock()
	fails := failures
	mu.Unlock()
	for name, want := range map[string]float64{
		"tailcar_lines_read_total":                                2000,
		"tailcar_records_shipped_total":                           2000,
		`tailcar_rotations_total{kind="rename"}`:                  1,
		`tailcar_rotations_total{kind="delete"}`:                  0,
		`tailcar_records_dropped_total{reason="truncated"}`:       1,
		`tailcar_records_dropped_total{reason="rejected_4xx"}`:    0,
		`tailcar_records_dropped_total{reason="partial_success"}`: 0,
		"tailcar_send_retries_total":                              float64(fails),
		`tailcar_backend_errors_total{class="http_5xx"}`:          float64(fails),
		"tailcar_drain_state":                                     0,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if fails != 3 {
		t.Fatalf("the server refused %d requests, want the burst of 3", fails)
	}
	if m["tailcar_batches_sent_total"] < 1 || m["tailcar_send_duration_seconds_count"] != m["tailcar_batches_sent_total"]+3 {
		t.Errorf("batches %v, attempts in the latency histogram %v", m["tailcar_batches_sent_total"], m["tailcar_send_duration_seconds_count"])
	}
	if m["tailcar_last_checkpoint_timestamp_seconds"] < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("no recent checkpoint: %v", m["tailcar_last_checkpoint_timestamp_seconds"])
	}
	if v, ok := m[fmt.Sprintf(`tailcar_file_lag_bytes{path="%s"}`, log)]; !ok || v != 0 {
		t.Errorf("lag series for %s: %v, %v; want 0 once everything is acked", log, v, ok)
	}
	// The rotated file has a series under its new name while it is
	// followed, and none once it is let go after the rotate wait.
	rotated := fmt.Sprintf(`tailcar_file_lag_bytes{path="%s.1"}`, log)
	if _, ok := m[rotated]; !ok {
		t.Fatalf("no series %s while the rotated file is followed; have %v", rotated, m)
	}
	waitFor(t, 30*time.Second, "the rotated file's series to go", func() bool {
		_, ok := scrape(t, addr)[rotated]
		return !ok
	})

	p.signal(syscall.SIGTERM)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(p.stderrText(), `"records_resent_on_retry"`) {
		t.Error("the exit summary does not count records resent on retry")
	}
}
