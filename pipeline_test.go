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

// Ensure the whole per-line path after reading, encode and add to a batch,
// allocates nothing once its buffers have grown.
func TestPipeline_HandleAllocatesNothing(t *testing.T) {
	enc, err := enrich.NewEncoder([]enrich.Tag{{Name: "_pod_name_", Value: "web"}, {Name: "_namespace_", Value: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	s := ship.NewShipper(ship.Config{Sink: ship.NewWriter(io.Discard), Acker: nopAcker{}, Log: zerolog.Nop(),
		BatchBytes: 1 << 30, BatchWait: time.Hour, Batches: 1})
	p := &pipeline{enc: enc, shipper: s}
	l := tailer.Line{Source: 1, Path: "/var/log/nginx/access.log", End: 200,
		Text: []byte(`10.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET /api/v1/items?seq=42 HTTP/1.1" 200 512 "-" "Mozilla/5.0"`)}
	ctx := context.Background()
	for range 20000 {
		if err := p.Handle(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	var handleErr error
	n := testing.AllocsPerRun(2000, func() {
		if err := p.Handle(ctx, l); err != nil {
			handleErr = err
		}
	})
	// A Handle that failed early would allocate nothing too: every line
	// must have reached its batch.
	if handleErr != nil {
		t.Fatal(handleErr)
	}
	if added := s.Stats().Added; added != 20000+2001 {
		t.Fatalf("%d records added, want %d", added, 20000+2001)
	}
	if n > 0.01 {
		t.Fatalf("Handle allocates %.2f times per line", n)
	}
}
