package main

import (
	"context"
	"io"
	"testing"
	"time"

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
