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
// In order: the filters, the parser, the event's time, the encoding.
type pipeline struct {
	enc    recordEncoder
	filter enrich.Filter
	parser *enrich.Parser     // nil: TAILCAR_PARSE=none
	paths  *enrich.PathTagger // nil: no TAILCAR_PATH_TAGS, or they are resources
	// groups give each file's group: an OTLP resource, Loki stream labels.
	groups  fileGroups
	shipper *ship.Shipper
	buf     []byte
	fields  enrich.Fields
	// seeded, when set, is enc itself, which encodes parsed records with
	// the seed of their unparsed form (enrich/unparsed.go), for a backend
	// that refuses a document for its fields (an Elasticsearch mapping
	// conflict): then the line goes as its own message, not lost.
	seeded *enrich.Encoder
	seed   []byte
	// Counters that metrics read; only Handle writes them.
	truncated, filtered, parseFailed, timeFallback atomic.Int64
}

// maxSeededLine bounds the lines whose parsed records carry a seed. A
// seed holds its line a second time until the batch is delivered: with
// TAILCAR_MAX_RECORD_BYTES raised to 16MiB and GOMEMLIMIT=57MiB, one 16 MiB
// JSON line took tailcar to 130 MB with its seed and 81 MB without; at
// the default cap of 1 MiB every record has one.
const maxSeededLine = 1 << 20

// fileGroups gives the group a file's records are sent in (enrich.Resources,
// enrich.LokiLabels): the same bytes for every record of the file.
type fileGroups interface {
	For(path string) []byte
}

// recordEncoder appends one record in the sink's encoding: a JSON object
// (enrich.Encoder) or an OTLP LogRecord (enrich.OTLPEncoder).
type recordEncoder interface {
	AppendRecord(dst []byte, r enrich.Record) []byte
}

// Handle encodes one line and adds it to the batch being filled.
func (p *pipeline) Handle(ctx context.Context, l tailer.Line) error {
	now := l.Read
	if now.IsZero() {
		now = time.Now()
	}
	ack := ship.Ack{Source: l.Source, Offset: l.Ack}
	if !p.filter.Keep(l.Text) {
		// Not shipped, but acknowledged in order with the records around
		// it, so the checkpoint moves past it.
		p.filtered.Add(1)
		return p.shipper.Skip(ctx, ack, now, l.Since)
	}
	if l.Truncated {
		p.truncated.Add(1)
	}
	rec := enrich.Record{Read: now, Event: l.Time, Path: l.Path, Message: l.Text, Truncated: l.Truncated, Stream: l.Stream}
	if p.paths != nil {
		rec.PathTags = p.paths.Encoded(l.Path)
	}
	if p.parser != nil {
		if !p.parser.Parse(l.Text, &p.fields) {
			p.parseFailed.Add(1) // shipped as it is, with the runtime's time if any
			if l.Time.IsZero() {
				p.timeFallback.Add(1)
			}
		} else {
			rec.Fields = &p.fields
			switch {
			case !p.fields.Time.IsZero():
				rec.Event = p.fields.Time // the app's own time beats the runtime's
			case l.Time.IsZero():
				p.timeFallback.Add(1)
			}
		}
	}
	var seed [2][]byte
	if p.seeded != nil && rec.Fields != nil && len(rec.Message) <= maxSeededLine {
		p.buf, p.seed = p.seeded.AppendRecordSeed(p.buf[:0], p.seed[:0], rec)
		seed = [2][]byte{p.seed, rec.Message}
	} else {
		p.buf = p.enc.AppendRecord(p.buf[:0], rec)
	}
	var resource []byte
	if p.groups != nil {
		resource = p.groups.For(l.Path)
	}
	err := p.shipper.Add(ctx, p.buf, ship.Meta{
		Ack: ack, Pos: l.End, ReadAt: now, Event: eventOrRead(rec.Event, now), Since: l.Since, Resource: resource,
		UnparsedSeed: seed,
	})
	p.buf = enrich.Sized(p.buf, len(p.buf)) // a huge record's buffer goes after the next record
	return err
}

func eventOrRead(event, read time.Time) time.Time {
	if event.IsZero() {
		return read
	}
	return event
}

// CaughtUp sends what the read turn gathered in the turn's own wake-up.
func (p *pipeline) CaughtUp() { p.shipper.Flush() }

// positionsAcker sends the shipper's acks back to the checkpoints.
type positionsAcker struct{ p *tailer.Positions }

func (a positionsAcker) Ack(x ship.Ack) { a.p.Ack(x.Source, x.Offset) }

// newPipeline builds the pipeline of the configuration.
func newPipeline(cfg *Config, shipper *ship.Shipper) *pipeline {
	p := &pipeline{enc: cfg.encoder, filter: cfg.filter, parser: cfg.parser, paths: cfg.pathTagger,
		groups: cfg.groups, shipper: shipper}
	if enc, ok := cfg.encoder.(*enrich.Encoder); ok && cfg.Sink == "elasticsearch" && cfg.parser != nil {
		p.seeded = enc
	}
	if cfg.Sink == "otlp" {
		p.paths = nil // the path tags are in the resource
	}
	return p
}
