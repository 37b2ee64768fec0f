package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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

// metrics serves /metrics in the Prometheus text format and /healthz. The
// hot path only bumps atomic counters of its own; a scrape reads them, so
// metrics cost nothing per line. The exposition is written here rather than
// by a library: prometheus/client_golang would push the image past 10 MiB,
// and VictoriaMetrics/metrics prints plain-text lines on stderr from its
// init when cgroup PSI files are missing (seen under podman).
type metrics struct {
	follower  *tailer.Follower
	shipper   *ship.Shipper
	positions *tailer.Positions
	pipe      *pipeline
	sends     *sendMetrics
	heartbeat string
	maxAge    time.Duration
	// drain is the drain state; the agent's run is its only writer.
	drain atomic.Int64
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
	mRefused      = "tailcar_files_refused_total"
	mMalformed    = "tailcar_lines_malformed_total"
	mParseFailed  = "tailcar_parse_failures_total"
	mTimeFallback = "tailcar_time_fallbacks_total"
	mSentUnparsed = "tailcar_records_sent_unparsed_total"
	mRotations    = "tailcar_rotations_total"
	mLag          = "tailcar_file_lag_bytes"
	mOldest       = "tailcar_oldest_unacked_record_age_seconds"
	mCheckpoint   = "tailcar_last_checkpoint_timestamp_seconds"
	mDrainState   = "tailcar_drain_state"
	mBuildVersion = "tailcar_build_info"
)

// sendMetrics is told about every send attempt (it is the shipper's
// Observer): their durations, and their failures by class.
type sendMetrics struct {
	latency histogram
	// errors counts failed attempts by ship.ErrorClass; the map is filled
	// at construction and only read afterwards.
	errors map[string]*atomic.Int64
}

func newSendMetrics() *sendMetrics {
	m := &sendMetrics{errors: make(map[string]*atomic.Int64)}
	for _, c := range ship.ErrorClasses {
		m.errors[c] = new(atomic.Int64)
	}
	m.latency.bounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	m.latency.counts = make([]atomic.Uint64, len(m.latency.bounds)+1)
	return m
}

// Attempt implements ship.Observer.
func (m *sendMetrics) Attempt(took time.Duration, _ int, err error) {
	m.latency.observe(took.Seconds())
	if err != nil {
		if c, ok := m.errors[ship.ErrorClass(err)]; ok {
			c.Add(1)
		}
	}
}

// histogram is a Prometheus histogram with fixed buckets.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumNs  atomic.Uint64
}

func (h *histogram) observe(seconds float64) {
	i := sort.SearchFloat64s(h.bounds, seconds)
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(seconds * 1e9))
}

// exposition writes the text format: a # TYPE line per family, then its
// series.
type exposition struct{ w io.Writer }

func (e exposition) family(name, kind, help string) {
	fmt.Fprintf(e.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func (e exposition) sample(name, labels string, v float64) {
	if labels != "" {
		labels = "{" + labels + "}"
	}
	fmt.Fprintf(e.w, "%s%s %s\n", name, labels, strconv.FormatFloat(v, 'g', -1, 64))
}

func (e exposition) one(name, kind, help string, v float64) {
	e.family(name, kind, help)
	e.sample(name, "", v)
}

// write renders every series from the components' counters now.
func (m *metrics) write(w io.Writer, now time.Time) {
	e := exposition{w}
	fs, st := m.follower.Stats(), m.shipper.Stats()
	e.one(mLinesRead, "counter", "Lines read from files.", float64(fs.Lines))
	e.one(mBytesRead, "counter", "Bytes read from files.", float64(fs.Bytes))
	e.one(mShipped, "counter", "Records the backend accepted.", float64(st.Delivered))
	e.family(mDropped, "counter", "Records dropped, by reason (truncated: cut at the record cap, still shipped).")
	e.sample(mDropped, `reason="truncated"`, float64(m.pipe.truncated.Load()))
	e.sample(mDropped, `reason="filtered"`, float64(m.pipe.filtered.Load()))
	e.sample(mDropped, `reason="rejected_4xx"`, float64(st.Rejected))
	e.sample(mDropped, `reason="poison"`, float64(st.Poison))
	e.sample(mDropped, `reason="too_large"`, float64(st.TooLarge))
	e.sample(mDropped, `reason="partial_success"`, float64(st.PartiallyRejected))
	e.one(mParseFailed, "counter", "Lines TAILCAR_PARSE could not parse, shipped as they are.", float64(m.pipe.parseFailed.Load()))
	e.one(mSentUnparsed, "counter", "Parsed records the backend refused for their fields (an Elasticsearch mapping conflict), delivered as their lines.", float64(st.Unparsed))
	e.one(mTimeFallback, "counter", "Records without a readable event time, stamped with the read time.", float64(m.pipe.timeFallback.Load()))
	e.one(mRetried, "counter", "Records sent again by retries.", float64(st.Resent))
	e.one(mRetries, "counter", "Send attempts after the first.", float64(st.Retries))
	e.one(mBatches, "counter", "Batches finished, accepted or dropped.", float64(st.Batches))
	e.family(mLatency, "histogram", "Duration of send attempts.")
	lat := &m.sends.latency
	var cumulative uint64
	for i, b := range lat.bounds {
		cumulative += lat.counts[i].Load()
		e.sample(mLatency+"_bucket", fmt.Sprintf(`le="%s"`, strconv.FormatFloat(b, 'g', -1, 64)), float64(cumulative))
	}
	cumulative += lat.counts[len(lat.bounds)].Load()
	e.sample(mLatency+"_bucket", `le="+Inf"`, float64(cumulative))
	e.sample(mLatency+"_sum", "", float64(lat.sumNs.Load())/1e9)
	e.sample(mLatency+"_count", "", float64(cumulative))
	e.family(mErrors, "counter", "Failed send attempts by class.")
	for _, c := range ship.ErrorClasses {
		e.sample(mErrors, fmt.Sprintf(`class="%s"`, c), float64(m.sends.errors[c].Load()))
	}
	e.one(mFiles, "gauge", "Files followed now.", float64(fs.Files))
	e.one(mRefused, "counter", "Matching paths not followed: not regular files, symlinks out of bounds, files that cannot be opened.", float64(fs.Refused))
	e.one(mMalformed, "counter", "Lines not in the container format they were read with, shipped as plain lines.", float64(fs.Malformed))
	e.family(mRotations, "counter", "Rotations seen, by kind.")
	e.sample(mRotations, `kind="rename"`, float64(fs.Renamed))
	e.sample(mRotations, `kind="delete"`, float64(fs.Deleted))
	e.sample(mRotations, `kind="truncate"`, float64(fs.Truncated))
	e.sample(mRotations, `kind="copy"`, float64(fs.Copied))
	// Per-file series exist only for the files followed now.
	e.family(mLag, "gauge", "File size minus acknowledged offset, per followed file.")
	for _, f := range m.follower.Files() {
		acked, _ := m.positions.Offset(f.Source)
		e.sample(mLag, fmt.Sprintf(`path="%s"`, escapeLabel(f.Path)), float64(max(f.Size-acked, 0)))
	}
	oldest := 0.0
	if t := m.shipper.OldestUnacked(); !t.IsZero() {
		oldest = now.Sub(t).Seconds()
	}
	e.one(mOldest, "gauge", "Age of the oldest record not yet acknowledged.", oldest)
	if t := m.positions.LastSaved(); !t.IsZero() {
		e.one(mCheckpoint, "gauge", "When positions were last written.", float64(t.UnixNano())/1e9)
	}
	e.one(mDrainState, "gauge", "0 following, 1 drain delay, 2 reading to the end and delivering.", float64(m.drain.Load()))
	e.family(mBuildVersion, "gauge", "Version of the running tailcar.")
	e.sample(mBuildVersion, fmt.Sprintf(`version="%s"`, escapeLabel(version)), 1)
}

// escapeLabel escapes a label value as the Prometheus text format wants:
// backslash, double quote and newline. The format is UTF-8, and one
// invalid byte (in a file name, say) makes a scraper refuse the whole
// page, so invalid bytes become U+FFFD.
func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(strings.ToValidUTF8(v, "\uFFFD"))
}

func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.write(w, time.Now())
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
