package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/tailcar/tailcar/probe"
	"github.com/tailcar/tailcar/ship"
	"github.com/tailcar/tailcar/tailer"
)

// Drain states, as the tailcar_drain_state gauge reports them.
const (
	drainFollowing = 0 // running
	drainDelay     = 1 // stopping: still following for the drain delay
	drainFinal     = 2 // stopping: reading to the end and delivering
)

// metrics serves /metrics in Prometheus text format and /healthz. The hot
// path only bumps atomic counters of its own; a scrape copies them into
// the set, so metrics cost nothing per line.
type metrics struct {
	set       *vm.Set
	follower  *tailer.Follower
	shipper   *ship.Shipper
	positions *tailer.Positions
	pipe      *pipeline
	heartbeat string
	maxAge    time.Duration
	drain     atomic.Int64

	latency *vm.PrometheusHistogram

	mu  sync.Mutex // serialises scrapes: refresh writes the set
	lag map[string]bool
}

// Series names; the README documents each.
const (
	mLinesRead    = "tailcar_lines_read_total"
	mBytesRead    = "tailcar_bytes_read_total"
	mShipped      = "tailcar_records_shipped_total"
	mDropped      = "tailcar_records_dropped_total"
	mRetried      = "tailcar_records_retried_total"
	mRetries      = "tailcar_send_retries_total"
	mBatches      = "tailcar_batches_sent_total"
	mLatency      = "tailcar_send_duration_seconds"
	mErrors       = "tailcar_backend_errors_total"
	mFiles        = "tailcar_files_followed"
	mRotations    = "tailcar_rotations_total"
	mLag          = "tailcar_file_lag_bytes"
	mOldest       = "tailcar_oldest_unacked_record_age_seconds"
	mCheckpoint   = "tailcar_last_checkpoint_timestamp_seconds"
	mDrainState   = "tailcar_drain_state"
	mBuildVersion = "tailcar_build_info"
)

// newMetrics returns the metrics; attach gives them what they report on,
// once built (the shipper needs the metrics as its observer first).
func newMetrics(heartbeat string, maxAge time.Duration) *metrics {
	m := &metrics{set: vm.NewSet(), heartbeat: heartbeat, maxAge: maxAge, lag: make(map[string]bool)}
	m.latency = m.set.NewPrometheusHistogram(mLatency)
	m.set.NewGauge(fmt.Sprintf(`%s{version="%s"}`, mBuildVersion, escapeLabel(version)), func() float64 { return 1 })
	return m
}

func (m *metrics) attach(f *tailer.Follower, s *ship.Shipper, p *tailer.Positions, pipe *pipeline) {
	m.follower, m.shipper, m.positions, m.pipe = f, s, p, pipe
}

// Attempt implements ship.Observer.
func (m *metrics) Attempt(took time.Duration, _ int, err error) {
	m.latency.Update(took.Seconds())
	if err != nil {
		m.set.GetOrCreateCounter(fmt.Sprintf(`%s{class=%q}`, mErrors, ship.ErrorClass(err))).Inc()
	}
}

func (m *metrics) counter(name string, v int64) {
	m.set.GetOrCreateCounter(name).Set(uint64(max(v, 0)))
}

func (m *metrics) gauge(name string, v float64) {
	m.set.GetOrCreateGauge(name, nil).Set(v)
}

// refresh copies the components' counters into the set.
func (m *metrics) refresh(now time.Time) {
	fs, st := m.follower.Stats(), m.shipper.Stats()
	m.counter(mLinesRead, fs.Lines)
	m.counter(mBytesRead, fs.Bytes)
	m.counter(mShipped, st.Delivered)
	m.counter(mDropped+`{reason="truncated"}`, m.pipe.truncated.Load())
	m.counter(mDropped+`{reason="rejected_4xx"}`, st.Rejected)
	m.counter(mDropped+`{reason="poison"}`, st.Poison)
	m.counter(mRetried, st.Resent)
	m.counter(mRetries, st.Retries)
	m.counter(mBatches, st.Batches)
	m.counter(mRotations+`{kind="rename"}`, fs.Renamed)
	m.counter(mRotations+`{kind="delete"}`, fs.Deleted)
	m.counter(mRotations+`{kind="truncate"}`, fs.Truncated)
	m.counter(mRotations+`{kind="copy"}`, fs.Copied)
	m.gauge(mFiles, float64(fs.Files))
	m.gauge(mDrainState, float64(m.drain.Load()))
	oldest := 0.0
	if t := m.shipper.OldestUnacked(); !t.IsZero() {
		oldest = now.Sub(t).Seconds()
	}
	m.gauge(mOldest, oldest)
	if t := m.positions.LastSaved(); !t.IsZero() {
		m.gauge(mCheckpoint, float64(t.UnixNano())/1e9)
	}
	// Per-file series exist only for the files followed now.
	seen := make(map[string]bool)
	for _, f := range m.follower.Files() {
		acked, _ := m.positions.Offset(f.Source)
		name := fmt.Sprintf(`%s{path="%s"}`, mLag, escapeLabel(f.Path))
		m.gauge(name, float64(max(f.Size-acked, 0)))
		seen[name] = true
	}
	for name := range m.lag {
		if !seen[name] {
			m.set.UnregisterMetric(name)
		}
	}
	m.lag = seen
}

// escapeLabel escapes a label value as the Prometheus text format wants:
// backslash, double quote and newline, nothing else.
func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.refresh(time.Now())
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.set.WritePrometheus(w)
	})
	// The same liveness as `tailcar probe`, for an httpGet probe.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := probe.Check(m.heartbeat, m.maxAge, time.Now())
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	return mux
}

// serve answers on l until ctx ends.
func (m *metrics) serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: m.handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics server: %w", err)
		}
		return nil
	}
}
