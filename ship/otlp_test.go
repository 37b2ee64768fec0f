package ship

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tailcar/tailcar/enrich"
	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// otlpRecords encodes n numbered records as LogRecords, alternating
// between two files whose path tags give two resources.
func otlpRecords(t *testing.T, n int) (recs [][]byte, resources [][]byte, reads []time.Time) {
	t.Helper()
	tagger, err := enrich.NewPathTagger(enrich.PathTagsKubernetes)
	if err != nil {
		t.Fatal(err)
	}
	res := enrich.NewResources([]enrich.Tag{{Name: "_node_name_", Value: "node-1"}, {Name: "team", Value: "shop"}}, tagger)
	paths := []string{"/var/log/pods/shop_web-1_uid-1/nginx/0.log", "/var/log/pods/shop_web-2_uid-2/nginx/0.log"}
	enc := enrich.NewOTLPEncoder()
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		read := base.Add(time.Duration(i) * time.Second)
		path := paths[i%2]
		recs = append(recs, enc.AppendRecord(nil, enrich.Record{
			Read: read, Event: read.Add(-time.Minute), Path: path, Stream: "stdout",
			Message: fmt.Appendf(nil, "seq=%d", i),
		}))
		resources = append(resources, res.For(path))
		reads = append(reads, read)
	}
	return recs, resources, reads
}

// decodeOTLP decodes a request body with the official generated types.
// LogsData is ExportLogsServiceRequest on the wire (field 1, repeated
// ResourceLogs) without the collector package, which drags in gRPC.
func decodeOTLP(t *testing.T, body []byte) *logspb.LogsData {
	t.Helper()
	var req logspb.LogsData
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatalf("the body is not an ExportLogsServiceRequest: %v", err)
	}
	return &req
}

// Ensure what the sink sends decodes with the official types: one
// ResourceLogs per resource, the semantic conventions' names, the body,
// both times and the record attributes; with every compression.
func TestOTLP_RequestDecodesWithTheOfficialTypes(t *testing.T) {
	for _, compression := range []string{CompressionGzip, CompressionZstd, CompressionNone} {
		t.Run(compression, func(t *testing.T) {
			c := &capture{}
			var got []*logspb.LogsData
			c.respond = func(_ int, body []byte, w http.ResponseWriter, r *http.Request) bool {
				if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
					t.Errorf("Content-Type %q", ct)
				}
				if r.URL.Path != "/otel/v1/logs" || r.URL.RawQuery != "tenant=a" {
					t.Errorf("posted to %s", r.URL)
				}
				got = append(got, decodeOTLP(t, body))
				w.WriteHeader(http.StatusOK)
				return false
			}
			srv := httptest.NewServer(c)
			defer srv.Close()
			sink, err := NewOTLP(Endpoint{URL: mustURL(t, srv.URL+"/otel?tenant=a"), Compression: compression}, "v9")
			if err != nil {
				t.Fatal(err)
			}
			const n = 50
			recs, resources, reads := otlpRecords(t, n)
			s, acks, err := shipRecords(t, Config{Sink: sink, BatchBytes: 1 << 10}, recs, resources)
			if err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Delivered != n || st.Dropped != 0 {
				t.Fatalf("stats %+v", st)
			}
			if acks.last(7) != n*10 {
				t.Fatalf("acked to %d", acks.last(7))
			}
			seen := make(map[string]int)
			for _, req := range got {
				for _, rl := range req.ResourceLogs {
					res := map[string]string{}
					for _, kv := range rl.Resource.Attributes {
						res[kv.Key] = kv.Value.GetStringValue()
					}
					if res["k8s.node.name"] != "node-1" || res["team"] != "shop" || res["k8s.namespace.name"] != "shop" ||
						res["k8s.container.name"] != "nginx" || !strings.HasPrefix(res["k8s.pod.name"], "web-") ||
						res["k8s.pod.uid"] != "uid-"+strings.TrimPrefix(res["k8s.pod.name"], "web-") {
						t.Fatalf("resource %v", res)
					}
					if len(rl.ScopeLogs) != 1 || rl.ScopeLogs[0].Scope.GetName() != "tailcar" || rl.ScopeLogs[0].Scope.GetVersion() != "v9" {
						t.Fatalf("scope logs %v", rl.ScopeLogs)
					}
					for _, lr := range rl.ScopeLogs[0].LogRecords {
						var i int
						if _, err := fmt.Sscanf(lr.Body.GetStringValue(), "seq=%d", &i); err != nil || i < 1 || i > n {
							t.Fatalf("body %v", lr.Body)
						}
						seen[lr.Body.GetStringValue()]++
						wantPod := fmt.Sprintf("web-%d", 1+i%2) // otlpRecords: paths[i%2]
						if res["k8s.pod.name"] != wantPod {
							t.Fatalf("record %d under pod %s, want %s", i, res["k8s.pod.name"], wantPod)
						}
						read := reads[i-1]
						if lr.ObservedTimeUnixNano != uint64(read.UnixNano()) || lr.TimeUnixNano != uint64(read.Add(-time.Minute).UnixNano()) {
							t.Fatalf("record %d times %d/%d", i, lr.TimeUnixNano, lr.ObservedTimeUnixNano)
						}
						attrs := map[string]string{}
						for _, kv := range lr.Attributes {
							attrs[kv.Key] = kv.Value.GetStringValue()
						}
						if attrs["log.iostream"] != "stdout" || !strings.HasPrefix(attrs["log.file.path"], "/var/log/pods/shop_"+wantPod) {
							t.Fatalf("record %d attributes %v", i, attrs)
						}
					}
				}
			}
			missing, dup := 0, 0
			for i := 1; i <= n; i++ {
				switch seen[fmt.Sprintf("seq=%d", i)] {
				case 0:
					missing++
				case 1:
				default:
					dup++
				}
			}
			t.Logf("delivery: written %d, missing %d, duplicated %d", n, missing, dup)
			if missing+dup != 0 {
				t.Fatal("want each record once")
			}
		})
	}
}

// shipRecords runs a shipper over the given OTLP records from source 7,
// each ending 10 bytes after the one before.
func shipRecords(t *testing.T, cfg Config, recs, resources [][]byte) (*Shipper, *ackLog, error) {
	t.Helper()
	return shipEach(t, cfg, len(recs), func(i int) ([]byte, Meta) {
		m := meta(7, int64(i*10))
		m.Resource = resources[i-1]
		return recs[i-1], m
	})
}

// Ensure a partial success counts the refused records as dropped, logs
// the backend's message once, and moves the checkpoint past the batch.
func TestOTLP_PartialSuccess(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ExportLogsServiceResponse{partial_success: {rejected_log_records: 2, error_message: …}}
		var partial []byte
		partial = protowire.AppendTag(partial, 1, protowire.VarintType)
		partial = protowire.AppendVarint(partial, 2)
		partial = protowire.AppendTag(partial, 2, protowire.BytesType)
		partial = protowire.AppendString(partial, "two records were too old")
		answer := protowire.AppendTag(nil, 1, protowire.BytesType)
		answer = protowire.AppendBytes(answer, partial)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	sink, _ := NewOTLP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionGzip}, "")
	recs, resources, _ := otlpRecords(t, 3)
	s, acks, err := shipRecords(t, Config{Sink: sink, Log: zerolog.New(&logs), BatchBytes: 1 << 20}, recs, resources)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Delivered != 1 || st.PartiallyRejected != 2 || st.Dropped != 2 || st.Undelivered() != 0 {
		t.Fatalf("stats %+v; want 1 delivered and 2 dropped by partial success", st)
	}
	if acks.last(7) != 30 {
		t.Fatalf("acked to %d, want past the batch", acks.last(7))
	}
	if strings.Count(logs.String(), "two records were too old") != 1 {
		t.Fatalf("want the backend's message logged once:\n%s", logs.String())
	}
}

// Ensure a 400 carrying a google.rpc.Status drops the batch, counts it
// and logs the decoded message, not the protobuf bytes.
func TestOTLP_BadRequestWithStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// google.rpc.Status{code: 3, message: …}
		answer := protowire.AppendTag(nil, 1, protowire.VarintType)
		answer = protowire.AppendVarint(answer, 3)
		answer = protowire.AppendTag(answer, 2, protowire.BytesType)
		answer = protowire.AppendString(answer, "log record has an invalid trace id")
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	sink, _ := NewOTLP(Endpoint{URL: mustURL(t, srv.URL)}, "")
	recs, resources, _ := otlpRecords(t, 4)
	s, acks, err := shipRecords(t, Config{Sink: sink, Log: zerolog.New(&logs), BatchBytes: 1 << 20}, recs, resources)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Rejected != 4 || st.Delivered != 0 || st.Retries != 0 {
		t.Fatalf("stats %+v; want the batch dropped without retry", st)
	}
	if acks.last(7) != 40 {
		t.Fatalf("acked to %d", acks.last(7))
	}
	if !strings.Contains(logs.String(), "400 Bad Request: log record has an invalid trace id") {
		t.Fatalf("want the decoded Status in the log:\n%s", logs.String())
	}
}

// Ensure 429 with Retry-After, 502, 503 and 504 are retried, and the batch
// sent again carries the very same bytes.
func TestOTLP_RetriesSendTheSameBytes(t *testing.T) {
	answers := []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	c := &capture{}
	var bodies [][]byte
	c.respond = func(n int, body []byte, w http.ResponseWriter, r *http.Request) bool {
		bodies = append(bodies, body)
		if n < len(answers) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(answers[n])
			return false
		}
		w.WriteHeader(http.StatusOK)
		return false
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	sink, _ := NewOTLP(Endpoint{URL: mustURL(t, srv.URL+"/v1/logs"), Compression: CompressionZstd}, "")
	recs, resources, _ := otlpRecords(t, 5)
	s, _, err := shipRecords(t, Config{Sink: sink, BatchBytes: 1 << 20}, recs, resources)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Delivered != 5 || st.Retries != 4 {
		t.Fatalf("stats %+v", st)
	}
	if len(c.bodies) != 5 {
		t.Fatalf("%d requests", len(c.bodies))
	}
	for i := range c.bodies {
		if !bytes.Equal(c.bodies[i], c.bodies[0]) {
			t.Fatalf("attempt %d sent other bytes than the first", i+1)
		}
		if c.requests[i].URL.Path != "/v1/logs" {
			t.Fatalf("a URL ending in /v1/logs is used as given; posted to %s", c.requests[i].URL.Path)
		}
	}
	if len(decodeOTLP(t, bodies[4]).ResourceLogs) != 2 {
		t.Fatal("want two resources")
	}
}

// Ensure a 2xx answer is read in protobuf or OTLP JSON, and one that is
// neither counts as a full success: retrying what the status said was
// taken would duplicate every record.
func TestOTLP_AnswersOfEveryShape(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   string
		rejected int64
		message  string
	}{
		{"empty", "", 0, ""},
		{"protobuf", "\x0a\x07\x08\x03\x12\x03old", 3, "old"},
		{"JSON, int64 as string", `{"partialSuccess":{"rejectedLogRecords":"4","errorMessage":"too old"}}`, 4, "too old"},
		{"JSON, int64 as number", ` {"partialSuccess":{"rejectedLogRecords":5}}`, 5, ""},
		{"JSON, empty", `{}`, 0, ""},
		{"truncated protobuf", "\x0a\xff", 0, ""},
		{"length past the end", "\x0a\x02\x08", 0, ""},
		{"negative count", "\x0a\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0, ""},
		{"text", "OK", 0, ""},
	} {
		rejected, message := readAnswer([]byte(tc.answer))
		if rejected != tc.rejected || message != tc.message {
			t.Errorf("%s: read %d %q, want %d %q", tc.name, rejected, message, tc.rejected, tc.message)
		}
	}
}

// Ensure Retry-After on a 429 is read for the shipper to honour.
func TestOTLP_RetryAfterIsRead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	sink, _ := NewOTLP(Endpoint{URL: mustURL(t, srv.URL)}, "")
	recs, resources, _ := otlpRecords(t, 1)
	b := &Batch{}
	m := meta(1, 1)
	m.Resource = resources[0]
	b.add(recs[0], m)
	b.setPart(0, 1)
	err := sink.Send(context.Background(), b)
	st, ok := err.(*StatusError)
	if !ok || st.Status != 429 || st.RetryAfter != 7*time.Second || ActionOf(err) != Retry {
		t.Fatalf("got %v; want a 429 to retry after 7s", err)
	}
}

// Ensure the OTLP records' grouping survives a 413 split: each part is a
// request of its own, with the resources its records need.
func TestOTLP_TooLargeSplitsByRecords(t *testing.T) {
	c := &capture{}
	var got []*logspb.LogsData
	c.respond = func(_ int, body []byte, w http.ResponseWriter, r *http.Request) bool {
		req := decodeOTLP(t, body)
		n := 0
		for _, rl := range req.ResourceLogs {
			n += len(rl.ScopeLogs[0].LogRecords)
		}
		if n > 2 {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return false
		}
		got = append(got, req)
		w.WriteHeader(http.StatusOK)
		return false
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	sink, _ := NewOTLP(Endpoint{URL: mustURL(t, srv.URL)}, "")
	recs, resources, _ := otlpRecords(t, 7)
	s, _, err := shipRecords(t, Config{Sink: sink, BatchBytes: 1 << 20}, recs, resources)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, req := range got {
		for _, rl := range req.ResourceLogs {
			for _, lr := range rl.ScopeLogs[0].LogRecords {
				bodies = append(bodies, lr.Body.GetStringValue())
			}
		}
	}
	tally := seq.Count(bodies, 7)
	t.Logf("delivery through 413 splits: %+v", tally)
	if st := s.Stats(); st.Delivered != 7 || tally.Missing != 0 || tally.Duplicated != 0 {
		t.Fatalf("stats %+v; received %+v: want each record once", st, tally)
	}
}
