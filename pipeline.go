package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/tailcar/tailcar/enrich"
	"github.com/tailcar/tailcar/ship"
	"github.com/tailcar/tailcar/tailer"
)

// pipeline turns tailer lines into records and hands them to the shipper:
// the tailer → enrich → ship path, one line at a time, without allocating.
type pipeline struct {
	enc     *enrich.Encoder
	shipper *ship.Shipper
	buf     []byte
	// truncated counts records cut at TAILCAR_MAX_RECORD_BYTES; metrics
	// read it.
	truncated atomic.Int64
}

// Handle encodes one line and adds it to the batch being filled.
func (p *pipeline) Handle(ctx context.Context, l tailer.Line) error {
	if l.Truncated {
		p.truncated.Add(1)
	}
	now := time.Now()
	p.buf = p.enc.AppendRecord(p.buf[:0], now, l.Path, l.Text, l.Truncated)
	return p.shipper.Add(ctx, p.buf, ship.Meta{
		Ack: ship.Ack{Source: l.Source, Offset: l.Ack}, Pos: l.End,
		ReadAt: now, Event: now, Since: l.Since,
	})
}

// CaughtUp sends what the read turn gathered in the turn's own wake-up.
func (p *pipeline) CaughtUp() { p.shipper.Flush() }

// positionsAcker sends the shipper's acks back to the checkpoints.
type positionsAcker struct{ p *tailer.Positions }

func (a positionsAcker) Ack(x ship.Ack) { a.p.Ack(x.Source, x.Offset) }
