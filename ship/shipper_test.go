package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"
)

// TestMain refuses dials that leave the machine: these tests talk only
// to servers they start on loopback.
func TestMain(m *testing.M) {
	http.DefaultTransport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("test dialled %s, which is not loopback", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	os.Exit(m.Run())
}

// ackLog records acks in arrival order.
type ackLog struct {
	mu   sync.Mutex
	acks []Ack
}

func (a *ackLog) Ack(x Ack) {
	a.mu.Lock()
	a.acks = append(a.acks, x)
	a.mu.Unlock()
}

func (a *ackLog) last(source uint64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var off int64 = -1
	for _, x := range a.acks {
		if x.Source == source {
			if x.Offset < off {
				panic("acks went backwards")
			}
			off = x.Offset
		}
	}
	return off
}

// capture is a receiver that decompresses every accepted body and keeps
// its records; respond decides the answer to each request.
type capture struct {
	mu       sync.Mutex
	records  []string
	requests []*http.Request
	bodies   [][]byte
	respond  func(n int, body []byte, w http.ResponseWriter, r *http.Request) bool // true: accepted
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	body := raw
	switch r.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body, _ = io.ReadAll(zr)
	case "zstd":
		d, _ := zstd.NewReader(nil)
		body, _ = d.DecodeAll(raw, nil)
	}
	c.mu.Lock()
	n := len(c.requests)
	c.requests = append(c.requests, r)
	c.bodies = append(c.bodies, raw)
	c.mu.Unlock()
	if c.respond != nil && !c.respond(n, body, w, r) {
		return
	}
	c.mu.Lock()
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if l != "" {
			c.records = append(c.records, l)
		}
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (c *capture) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.records...)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// shipAll adds n numbered records from one source, closes, and runs the
// shipper to the end.
func shipAll(t *testing.T, cfg Config, n int) (*Shipper, *ackLog, error) {
	t.Helper()
	return shipEach(t, cfg, n, func(i int) ([]byte, Meta) {
		return []byte(fmt.Sprintf(`{"message":"seq=%d"}`, i)), meta(7, int64(i*10))
	})
}

// shipEach adds records 1..n from next, closes, and runs the shipper to
// the end, with short waits and backoffs.
func shipEach(t *testing.T, cfg Config, n int, next func(i int) ([]byte, Meta)) (*Shipper, *ackLog, error) {
	t.Helper()
	acks := &ackLog{}
	cfg.Acker = acks
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = 4 << 10
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = 50 * time.Millisecond
	}
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	s := NewShipper(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := 1; i <= n; i++ {
		rec, m := next(i)
		if err := s.Add(ctx, rec, m); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return s, acks, <-done
}

// meta describes a record of source ending at offset, read now.
func meta(source uint64, offset int64) Meta {
	now := time.Now()
	return Meta{Ack: Ack{Source: source, Offset: offset}, Pos: offset, ReadAt: now, Event: now}
}

func requireEach(t *testing.T, records []string, n int) {
	t.Helper()
	seen := make(map[string]int)
	for _, r := range records {
		seen[r]++
	}
	missing, dup := 0, 0
	for i := 1; i <= n; i++ {
		switch c := seen[fmt.Sprintf(`{"message":"seq=%d"}`, i)]; {
		case c == 0:
			missing++
		case c > 1:
			dup += c - 1
		}
	}
	t.Logf("delivery: written %d, received %d, missing %d, duplicated %d", n, len(records), missing, dup)
	if missing != 0 || dup != 0 {
		t.Fatalf("want each record once: %d missing, %d duplicated", missing, dup)
	}
}

// Ensure records are posted as NDJSON with the right headers, compressed
// as configured, and acked in order.
func TestHTTP_PostsNDJSONAndAcksInOrder(t *testing.T) {
	for _, comp := range []string{CompressionNone, CompressionGzip, CompressionZstd} {
		t.Run(comp, func(t *testing.T) {
			c := &capture{}
			srv := httptest.NewServer(c)
			defer srv.Close()
			sink, err := NewHTTP(Endpoint{URL: mustURL(t, srv.URL+"/ingest?x=1"), Compression: comp,
				Headers: map[string]string{"X-Team": "shop"}, User: "u", Password: "p"})
			if err != nil {
				t.Fatal(err)
			}
			s, acks, err := shipAll(t, Config{Sink: sink}, 3000)
			if err != nil {
				t.Fatal(err)
			}
			requireEach(t, c.got(), 3000)
			if got := acks.last(7); got != 30000 {
				t.Errorf("last ack %d, want 30000", got)
			}
			if st := s.Stats(); st.Delivered != 3000 || st.Dropped != 0 {
				t.Errorf("stats %+v", st)
			}
			r := c.requests[0]
			want := map[string]string{"Content-Type": "application/x-ndjson", "X-Team": "shop", "Content-Encoding": map[string]string{"none": "", "gzip": "gzip", "zstd": "zstd"}[comp]}
			for k, v := range want {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
				t.Error("no basic auth")
			}
			if r.URL.Path != "/ingest" || r.URL.RawQuery != "x=1" {
				t.Errorf("posted to %s", r.URL)
			}
		})
	}
}

// Ensure 503 on every third request costs retries, not records, and
// repeats none.
func TestHTTP_503EveryThirdRequest(t *testing.T) {
	c := &capture{respond: func(n int, _ []byte, w http.ResponseWriter, _ *http.Request) bool {
		if n%3 == 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return false
		}
		return true
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	sink, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionGzip})
	s, acks, err := shipAll(t, Config{Sink: sink, BatchBytes: 2 << 10}, 2000)
	if err != nil {
		t.Fatal(err)
	}
	requireEach(t, c.got(), 2000)
	if s.Stats().Retries == 0 {
		t.Error("no retries counted")
	}
	if acks.last(7) != 20000 {
		t.Errorf("last ack %d", acks.last(7))
	}
}

// Ensure a batch refused with 400 is dropped, counted, and acked (so a
// restart does not send it again), and the batches after it go through.
func TestHTTP_PoisonBatchIsDroppedAndCounted(t *testing.T) {
	c := &capture{respond: func(n int, body []byte, w http.ResponseWriter, _ *http.Request) bool {
		if bytes.Contains(body, []byte(`"seq=500"`)) {
			http.Error(w, "mapper_parsing_exception", http.StatusBadRequest)
			return false
		}
		return true
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	sink, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionNone})
	s, acks, err := shipAll(t, Config{Sink: sink, BatchBytes: 1 << 10}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Dropped == 0 || st.Dropped+st.Delivered != 1000 || int64(len(c.got())) != st.Delivered {
		t.Fatalf("stats %+v, received %d", st, len(c.got()))
	}
	if acks.last(7) != 10000 {
		t.Errorf("the checkpoint did not pass the poison batch: %d", acks.last(7))
	}
}

// Ensure an attempt that outlives its timeout is abandoned and retried.
func TestHTTP_SlowServerPastAttemptTimeout(t *testing.T) {
	c := &capture{respond: func(n int, _ []byte, w http.ResponseWriter, r *http.Request) bool {
		if n == 0 {
			<-r.Context().Done() // hang until the client gives up
			return false
		}
		return true
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	sink, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionGzip})
	s, _, err := shipAll(t, Config{Sink: sink, AttemptTimeout: 200 * time.Millisecond, BatchBytes: 1 << 20}, 50)
	if err != nil {
		t.Fatal(err)
	}
	requireEach(t, c.got(), 50)
	if s.Stats().Retries < 1 {
		t.Error("the slow attempt was not retried")
	}
}

// Ensure TLS verifies against a custom CA, and fails without it.
func TestHTTP_TLSWithCustomCA(t *testing.T) {
	c := &capture{}
	srv := httptest.NewTLSServer(c)
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := TLSConfig(caFile, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	sink, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionGzip, TLS: tlsCfg})
	if _, _, err := shipAll(t, Config{Sink: sink}, 10); err != nil {
		t.Fatal(err)
	}
	requireEach(t, c.got(), 10)

	untrusted, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionGzip})
	b := &Batch{}
	b.add([]byte(`{}`), meta(1, 1))
	b.setPart(0, 1)
	if err := untrusted.Send(context.Background(), b); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unknown CA was accepted: %v", err)
	}
	if _, err := TLSConfig(filepath.Join(t.TempDir(), "missing.pem"), "", "", false); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

// blockingSink holds every send until released.
type blockingSink struct{ release chan struct{} }

func (s *blockingSink) Send(ctx context.Context, _ *Batch) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ensure that while the sink is stuck, Add blocks once every batch buffer
// is taken (reading pauses, memory stays bounded), and resumes after.
func TestShipper_BackpressureBoundsMemory(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	s := NewShipper(Config{Sink: sink, Acker: &ackLog{}, Log: zerolog.Nop(), BatchBytes: 1 << 10, BatchWait: time.Hour, Batches: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	rec := bytes.Repeat([]byte("x"), 100)
	added := 0
	for {
		actx, acancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := s.Add(actx, rec, meta(1, int64(added)))
		acancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if added++; added > 1000 {
			t.Fatal("Add never blocked while the sink was stuck")
		}
	}
	// Two 1 KiB batches of 101-byte records: about 22 records fit.
	if added > 30 {
		t.Errorf("%d records buffered with two 1 KiB batches", added)
	}
	close(sink.release)
	if err := s.Add(ctx, rec, meta(1, int64(added))); err != nil {
		t.Fatalf("Add after the sink recovered: %v", err)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Delivered != int64(added+1) {
		t.Errorf("delivered %d, want %d", st.Delivered, added+1)
	}
}

// Ensure Run reports undelivered records when stopped before the sink
// accepted them: that is what makes the exit code 1.
func TestShipper_UndeliveredOnHardStop(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	s := NewShipper(Config{Sink: sink, Acker: &ackLog{}, Log: zerolog.Nop(), BatchBytes: 1 << 10, BatchWait: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if err := s.Add(ctx, []byte("{}"), meta(1, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Run returned nil with a record undelivered")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"5", 5 * time.Second, true},
		{"0", 0, true},
		{"Wed, 25 Nov 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Wed, 25 Nov 2026 09:00:00 GMT", 0, true},
		{"soon", 0, false},
		{"", 0, false},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// Ensure a partial _bulk failure retries only the items refused with 429,
// drops and counts the mapping error, and treats 409 (already created by
// an earlier attempt) as delivered.
func TestElasticsearch_PartialBulkFailure(t *testing.T) {
	var mu sync.Mutex
	var sent [][]string // the _id of each document, per request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/_bulk" || r.URL.Query().Get("pipeline") != "logs" {
			http.Error(w, "wrong URL "+r.URL.String(), 404)
			return
		}
		zr, _ := gzip.NewReader(r.Body)
		body, _ := io.ReadAll(zr)
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		var ids []string
		for i := 0; i < len(lines); i += 2 {
			var action struct {
				Create struct {
					Index string `json:"_index"`
					ID    string `json:"_id"`
				} `json:"create"`
			}
			if err := json.Unmarshal([]byte(lines[i]), &action); err != nil || action.Create.Index == "" {
				http.Error(w, "bad action "+lines[i], 400)
				return
			}
			ids = append(ids, action.Create.ID)
		}
		mu.Lock()
		n := len(sent)
		sent = append(sent, ids)
		mu.Unlock()
		var items []string
		for i := range ids {
			status := 201
			switch {
			case n == 0 && i == 1:
				status = 429
			case n == 0 && i == 2:
				status = 400
			case n == 0 && i == 3:
				status = 409
			}
			items = append(items, fmt.Sprintf(`{"create":{"status":%d,"error":{"type":"x"}}}`, status))
		}
		fmt.Fprintf(w, `{"took":1,"errors":%v,"items":[%s]}`, n == 0, strings.Join(items, ","))
	}))
	defer srv.Close()
	sink, err := NewElasticsearch(Endpoint{URL: mustURL(t, srv.URL+"/prefix?pipeline=logs"), Compression: CompressionGzip}, "logs-tailcar-default")
	if err != nil {
		t.Fatal(err)
	}
	s, acks, err := shipAll(t, Config{Sink: sink, BatchBytes: 1 << 20}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 2 || len(sent[0]) != 5 || len(sent[1]) != 1 || sent[1][0] != sent[0][1] {
		t.Fatalf("requests carried %v; want 5 documents, then only the one refused with 429", sent)
	}
	if sent[0][0] != "7-10" {
		t.Errorf("_id %q, want source-offset", sent[0][0])
	}
	if st := s.Stats(); st.Delivered != 4 || st.Dropped != 1 || st.Poison != 1 || st.Retries != 1 || st.Resent != 1 {
		t.Errorf("stats %+v, want 4 delivered, 1 dropped, and 1 retry resending 1 document", st)
	}
	if acks.last(7) != 50 {
		t.Errorf("last ack %d", acks.last(7))
	}
}

// lokiPush is a Loki push request as the tests decode it.
type lokiPush struct {
	Streams []struct {
		Stream map[string]string `json:"stream"`
		Values [][2]string       `json:"values"`
	} `json:"streams"`
}

// Ensure the Loki push carries the labels, the tenant, and the entries in
// order, as JSON.
func TestLoki_PushShape(t *testing.T) {
	var got lokiPush
	var tenant, path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, path = r.Header.Get("X-Scope-OrgID"), r.URL.Path
		zr, _ := gzip.NewReader(r.Body)
		if err := json.NewDecoder(zr).Decode(&got); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	sink, _ := NewLoki(Endpoint{URL: mustURL(t, srv.URL+"/base"), Compression: CompressionGzip, Tenant: "shop"}, []byte(`{"_namespace_":"shop","_pod_name_":"web"}`))
	if _, _, err := shipAll(t, Config{Sink: sink, BatchBytes: 1 << 20}, 20); err != nil {
		t.Fatal(err)
	}
	if tenant != "shop" || path != "/base/loki/api/v1/push" {
		t.Errorf("tenant %q path %q", tenant, path)
	}
	if len(got.Streams) != 1 || got.Streams[0].Stream["_pod_name_"] != "web" || len(got.Streams[0].Values) != 20 {
		t.Fatalf("push %+v", got)
	}
	for i, v := range got.Streams[0].Values {
		if v[1] != fmt.Sprintf(`{"message":"seq=%d"}`, i+1) {
			t.Fatalf("entry %d is %q", i, v[1])
		}
	}
}

// Ensure records whose files give different labels (a node's Pods) go
// into a stream each, every record once and in read order within its
// stream, across batches and a retried push.
func TestLoki_StreamPerGroupOfLabels(t *testing.T) {
	var mu sync.Mutex
	var pushes []lokiPush
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable) // sent again: the streams once more
			return
		}
		var p lokiPush
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		pushes = append(pushes, p)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	labels := [][]byte{[]byte(`{"_pod_name_":"web-1"}`), []byte(`{"_pod_name_":"web-2"}`), []byte(`{"_pod_name_":"db-0"}`)}
	sink, err := NewLoki(Endpoint{URL: mustURL(t, srv.URL)}, []byte(`{"job":"tailcar"}`))
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	if _, _, err := shipEach(t, Config{Sink: sink, BatchBytes: 2 << 10}, n, func(i int) ([]byte, Meta) {
		m := meta(uint64(1+i%3), int64(i*10))
		m.Resource = labels[i%3]
		return []byte(fmt.Sprintf(`{"message":"seq=%d"}`, i)), m
	}); err != nil {
		t.Fatal(err)
	}
	var all []string
	last := map[string]int{}
	for _, p := range pushes {
		seen := map[string]bool{}
		for _, st := range p.Streams {
			pod := st.Stream["_pod_name_"]
			if len(st.Stream) != 1 || seen[pod] {
				t.Fatalf("stream labels %v in a push with %v", st.Stream, seen)
			}
			seen[pod] = true
			for _, v := range st.Values {
				var i int
				if _, err := fmt.Sscanf(v[1], `{"message":"seq=%d"}`, &i); err != nil {
					t.Fatalf("entry %q", v[1])
				}
				if want := string(labels[i%3]); want != fmt.Sprintf(`{"_pod_name_":%q}`, pod) {
					t.Fatalf("seq=%d in the stream of %s, want %s", i, pod, want)
				}
				if i <= last[pod] {
					t.Fatalf("seq=%d after seq=%d in the stream of %s", i, last[pod], pod)
				}
				last[pod] = i
				all = append(all, v[1])
			}
		}
	}
	if len(pushes) < 2 {
		t.Fatalf("%d pushes; want the records spread over several batches", len(pushes))
	}
	requireEach(t, all, n)
}

// Ensure the per-record path of Add allocates nothing once the batch
// buffers have grown.
func TestShipper_AddDoesNotAllocate(t *testing.T) {
	s := NewShipper(Config{Sink: NewWriter(io.Discard), Acker: &ackLog{}, Log: zerolog.Nop(), BatchBytes: 1 << 30, BatchWait: time.Hour, Batches: 1})
	rec := []byte(`{"message":"x"}`)
	ctx := context.Background()
	m := meta(1, 1)
	for range 10000 { // grow the batch buffers first
		if err := s.Add(ctx, rec, m); err != nil {
			t.Fatal(err)
		}
	}
	var addErr error
	n := testing.AllocsPerRun(1000, func() {
		if err := s.Add(ctx, rec, m); err != nil {
			addErr = err
		}
	})
	// An Add that failed early would allocate nothing too.
	if addErr != nil {
		t.Fatal(addErr)
	}
	if added := s.Stats().Added; added != 10000+1001 {
		t.Fatalf("%d records added, want %d", added, 10000+1001)
	}
	if n > 0.01 {
		t.Fatalf("Add allocates %.2f times per record", n)
	}
}

func BenchmarkCompressor(b *testing.B) {
	var batch []byte
	for i := 0; len(batch) < 1<<20; i++ {
		batch = fmt.Appendf(batch, `{"@timestamp":"2026-11-24T10:00:00.123456789Z","message":"10.0.0.%d - - [24/Nov/2026:10:00:00 +0000] \"GET /api/v1/items?seq=%d HTTP/1.1\" 200 %d","file":"/var/log/nginx/access.log","_pod_name_":"web"}`+"\n", i%250, i, 100+i%900)
	}
	for _, kind := range []string{CompressionGzip, CompressionZstd} {
		b.Run(kind, func(b *testing.B) {
			c, err := NewCompressor(kind)
			if err != nil {
				b.Fatal(err)
			}
			var out []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				out, _ = c.Append(out[:0], batch)
			}
			b.ReportMetric(float64(len(out))/float64(len(batch)), "ratio")
		})
	}
}
