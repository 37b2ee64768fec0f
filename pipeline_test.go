package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/rs/zerolog"

	"github.com/tailcar/tailcar/enrich"
	"github.com/tailcar/tailcar/ship"
	"github.com/tailcar/tailcar/tailer"
)

type nopAcker struct{}

func (nopAcker) Ack(ship.Ack) {}

// Ensure the whole per-line path after reading (filter, parse, encode and
// add to a batch, or acknowledge a filtered line) allocates nothing once
// its buffers have grown, with TAILCAR_PARSE none, json and nginx, and
// json with the seeds of unparsed forms the elasticsearch sink keeps.
func TestPipeline_HandleAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (regexp's) allocate; make test runs this without it")
	}
	enc, err := enrich.NewEncoder([]enrich.Tag{{Name: "_pod_name_", Value: "web"}, {Name: "_namespace_", Value: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	nginxLine := []byte(`10.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET /api/v1/items?seq=40 HTTP/1.1" 200 512 "-" "Mozilla/5.0"`)
	jsonLine := []byte(`{"time":"2026-11-24T10:00:00.123Z","level":"INFO","msg":"order placed seq=40","order":42,"user":{"id":7}}`)
	dropped := []byte(`10.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET /api/v1/items?seq=41 HTTP/1.1" 200 512 "-" "Mozilla/5.0"`)
	for _, tc := range []struct {
		name, parse string
		line        []byte
		// seeded: the elasticsearch sink's seeds of unparsed forms
		seeded bool
	}{{"none", enrich.ParseNone, nginxLine, false}, {"nginx", enrich.ParseNginx, nginxLine, false}, {"json", enrich.ParseJSON, jsonLine, false},
		{"json-elasticsearch", enrich.ParseJSON, jsonLine, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Paths: List{"/var/log/*.log"}, Parse: tc.parse, MessageKey: List{"message", "msg"},
				TimeFormat: enrich.TimeAuto, Drop: `seq=\d*[1-9] `}
			if err := cfg.deriveParsing(); err != nil {
				t.Fatal(err)
			}
			s := ship.NewShipper(ship.Config{Sink: ship.NewWriter(io.Discard), Acker: nopAcker{}, Log: zerolog.Nop(),
				BatchBytes: 1 << 30, BatchWait: time.Hour, Batches: 1})
			p := &pipeline{enc: enc, filter: cfg.filter, parser: cfg.parser, shipper: s}
			if tc.seeded {
				p.seeded = enc
			}
			kept := tailer.Line{Source: 1, Path: "/var/log/nginx/access.log", End: 200, Text: tc.line}
			skipped := tailer.Line{Source: 1, Path: "/var/log/nginx/access.log", End: 400, Text: dropped}
			ctx := context.Background()
			for range 20000 {
				if err := p.Handle(ctx, kept); err != nil {
					t.Fatal(err)
				}
			}
			var handleErr error
			n := testing.AllocsPerRun(2000, func() {
				if err := p.Handle(ctx, kept); err != nil {
					handleErr = err
				}
				if err := p.Handle(ctx, skipped); err != nil {
					handleErr = err
				}
			})
			// A Handle that failed early would allocate nothing too: every line
			// must have reached its batch, parsed, and every dropped one its ack.
			if handleErr != nil {
				t.Fatal(handleErr)
			}
			if added := s.Stats().Added; added != 20000+2001 {
				t.Fatalf("%d records added, want %d", added, 20000+2001)
			}
			if f := p.filtered.Load(); f != 2001 {
				t.Fatalf("%d lines filtered, want 2001", f)
			}
			if pf := p.parseFailed.Load(); pf != 0 {
				t.Fatalf("%d lines failed to parse", pf)
			}
			if n > 0.01 {
				t.Fatalf("Handle allocates %.2f times per line pair", n)
			}
		})
	}
}

// Ensure one huge line leaves no buffer of its size behind, with every
// sink and parser: once shorter lines have followed, the live heap is back
// where it was before it, and the line itself is let go. Before, a 16 MiB
// JSON line kept the line, its fields, its record, its batch and the bulk
// body; with the elasticsearch sink, 50 MB stayed live, and under the
// GOMEMLIMIT of a 64Mi container the Go runtime then collected garbage
// without end (79,465 collections and 31 CPU-seconds in 135 s).
func TestPipeline_HugeLineLeavesNoHugeBuffers(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, ship.BulkPath) {
			io.WriteString(w, `{"took":0,"errors":false}`)
		}
	}))
	t.Cleanup(backend.Close)
	const huge = 16 << 20
	for _, tc := range []struct{ sink, parse, compression string }{
		{"stdout", "none", "gzip"}, {"http", "json", "none"}, {"elasticsearch", "json", "gzip"}, {"otlp", "json", "gzip"}, {"loki", "logfmt", "zstd"},
	} {
		t.Run(tc.sink+"-"+tc.parse, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("TAILCAR_PATHS", filepath.Join(dir, "*.log"))
			t.Setenv("TAILCAR_SINK", tc.sink)
			t.Setenv("TAILCAR_SINK_URL", backend.URL)
			t.Setenv("TAILCAR_PARSE", tc.parse)
			t.Setenv("TAILCAR_COMPRESSION", tc.compression)
			t.Setenv("TAILCAR_MAX_RECORD_BYTES", "16MiB")
			cfg, err := loadConfig()
			if err != nil {
				t.Fatal(err)
			}
			sink, err := newSink(cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			s := ship.NewShipper(ship.Config{Sink: sink, Acker: nopAcker{}, Log: zerolog.Nop(),
				BatchBytes: int(cfg.BatchBytes), BatchWait: time.Nanosecond, Unparse: enrich.AppendUnparsed})
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- s.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-ran })
			p := newPipeline(cfg, s)

			pos := int64(0)
			handle := func(text []byte) {
				t.Helper()
				pos += int64(len(text)) + 1
				if err := p.Handle(ctx, tailer.Line{Source: 1, Path: "/var/log/app/app.log", End: pos, Text: text}); err != nil {
					t.Fatal(err)
				}
			}
			// The huge lines have more fields than the short ones, whose
			// fields then leave some of the huge lines' in place; their
			// padding is all x, needing no quotes or escapes.
			hugeLine := func(n int, pad, more string) []byte {
				if tc.parse == "logfmt" {
					return fmt.Appendf(nil, `time=2026-12-05T06:00:00Z level=info msg="seq=%d" status=200 pad=%s%s`, n, pad, more)
				}
				return fmt.Appendf(nil, `{"time":"2026-12-05T06:00:00Z","level":"INFO","msg":"seq=%d","user":{"id":7,"plan":"pro"},"pad":"%s"%s}`, n, pad, more)
			}
			shortLine := func(n int) []byte {
				if tc.parse == "logfmt" {
					return fmt.Appendf(nil, `msg="seq=%d"`, n)
				}
				return fmt.Appendf(nil, `{"msg":"seq=%d"}`, n)
			}
			// Batches of ten short lines, each delivered, enough to pass
			// through every batch buffer twice.
			shortLines := func(from int) {
				t.Helper()
				for n := from; n < from+100; n++ {
					handle(shortLine(n))
					if n%10 == 9 {
						s.Flush()
					}
				}
				waitFor(t, 10*time.Second, "every record delivered", func() bool {
					st := s.Stats()
					return st.Delivered == st.Added
				})
			}
			liveHeap := func() uint64 {
				var m runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m)
				return m.HeapAlloc
			}

			shortLines(0)
			before := liveHeap()
			// One that parses, and one that does not (a key twice).
			pad := `\n` + strings.Repeat("x", huge-200) // an escape: JSON strings are decoded
			var gone []weak.Pointer[byte]
			again := `,"msg":"again"`
			if tc.parse == "logfmt" {
				again = ` msg=again`
			}
			for _, long := range [][]byte{hugeLine(100, pad, ""), hugeLine(101, pad, again)} {
				handle(long)
				gone = append(gone, weak.Make(&long[0]))
			}
			s.Flush()
			shortLines(102)
			after := liveHeap()
			if pf, want := p.parseFailed.Load(), int64(1); pf != want && tc.parse != "none" {
				t.Fatalf("%d lines failed to parse, want %d", pf, want)
			}
			if st := s.Stats(); st.Added != 202 || st.Dropped != 0 {
				t.Fatalf("%d records added and %d dropped, want 202 and 0", st.Added, st.Dropped)
			}
			t.Logf("live heap %.1f MiB before the huge lines, %.1f MiB after them and 100 shorter ones", float64(before)/(1<<20), float64(after)/(1<<20))
			if after > before+4<<20 {
				t.Errorf("live heap %.1f MiB after two lines of %d MiB and shorter ones, %.1f MiB before them",
					float64(after)/(1<<20), huge>>20, float64(before)/(1<<20))
			}
			for i, w := range gone {
				if w.Value() != nil {
					t.Errorf("huge line %d is still referenced", i+1)
				}
			}
		})
	}
}
