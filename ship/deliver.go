package ship

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Batch is a run of encoded records, newline-delimited, with what each one
// acks. Sinks read it; only the Shipper changes it.
type Batch struct {
	// Data holds the records as NDJSON: each record followed by '\n'.
	Data []byte
	// Records has one entry per record, in order.
	Records []Record

	// due is when the batch must leave.
	due time.Time
	// settled marks records a sink has finished with (accepted or
	// rejected) while others are retried; dropped counts the rejected.
	settled []bool
	dropped int
	// body caches what a sink built from the batch (compressed, framed),
	// so that a retry sends the very same bytes without building them again.
	body      []byte
	bodyReady bool
}

// Record locates one record in Batch.Data and says what it acks.
type Record struct {
	End  int // Data[previous End:End] is the record and its newline
	Ack  Ack
	Time int64 // when the record was read, Unix nanoseconds
}

func (b *Batch) add(rec []byte, ack Ack, at time.Time) {
	b.Data = append(b.Data, rec...)
	b.Data = append(b.Data, '\n')
	b.Records = append(b.Records, Record{End: len(b.Data), Ack: ack, Time: at.UnixNano()})
}

func (b *Batch) reset() {
	b.Data = b.Data[:0]
	b.Records = b.Records[:0]
	b.body = b.body[:0]
	b.bodyReady = false
	b.settled = b.settled[:0]
	b.dropped = 0
}

// Body returns the request body for this batch, building it with build on
// first use and returning the same bytes on every retry.
func (b *Batch) Body(build func(dst []byte, b *Batch) ([]byte, error)) ([]byte, error) {
	if b.bodyReady {
		return b.body, nil
	}
	body, err := build(b.body[:0], b)
	if err != nil {
		return nil, err
	}
	b.body, b.bodyReady = body, true
	return body, nil
}

// Each calls fn for every record not yet settled, without its newline.
func (b *Batch) Each(fn func(i int, rec []byte, r Record)) {
	start := 0
	for i, r := range b.Records {
		if i >= len(b.settled) || !b.settled[i] {
			fn(i, b.Data[start:r.End-1], r)
		}
		start = r.End
	}
}

// deliver sends b until the sink accepts or rejects it, or ctx ends. Every
// attempt has its own timeout. A failure is logged once when it starts and
// once when it ends, however many attempts it takes.
func (s *Shipper) deliver(ctx context.Context, b *Batch) error {
	if len(b.Records) == 0 {
		return nil
	}
	s.inFlightSince.Store(b.Records[0].Time)
	defer s.inFlightSince.Store(0)
	backoff := s.cfg.MinBackoff
	var failingSince time.Time
	attempts := 0
	for {
		attempts++
		if attempts > 1 {
			s.resent.Add(int64(len(b.Records)))
		}
		started := time.Now()
		actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
		// Waiting for the backend, however long it takes within the
		// attempt's timeout, is not being wedged.
		s.cfg.SenderPulse.Waiting()
		err := s.cfg.Sink.Send(actx, b)
		s.cfg.SenderPulse.Busy()
		cancel()
		s.cfg.Observer.Attempt(time.Since(started), len(b.Records), err)
		if err == nil {
			if !failingSince.IsZero() {
				s.cfg.Log.Info().Int("attempts", attempts).Dur("down_for", time.Since(failingSince)).Msg("backend recovered")
			}
			s.batches.Add(1)
			s.delivered.Add(int64(len(b.Records) - b.dropped))
			s.dropped.Add(int64(b.dropped))
			s.poison.Add(int64(b.dropped))
			s.ack(b)
			return nil
		}
		var rejected *RejectedError
		if errors.As(err, &rejected) {
			// Acking a dropped batch is deliberate: the checkpoint must pass
			// a poison batch, or every restart would send it again.
			if !s.rejectLogged[rejected.Status] {
				s.rejectLogged[rejected.Status] = true
				s.cfg.Log.Error().Err(err).Int("records", len(b.Records)).Msg("batch dropped; further drops with this status are logged at debug")
			} else {
				s.cfg.Log.Debug().Err(err).Int("records", len(b.Records)).Msg("batch dropped")
			}
			s.batches.Add(1)
			s.dropped.Add(int64(len(b.Records)))
			s.rejected.Add(int64(len(b.Records)))
			s.ack(b)
			return nil
		}
		if ctx.Err() != nil {
			return s.errUndelivered(ctx.Err())
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
			s.cfg.Log.Warn().Err(err).Msg("send failed, retrying until the backend accepts")
		} else {
			s.cfg.Log.Debug().Err(err).Int("attempt", attempts).Msg("send failed again")
		}
		s.retries.Add(1)
		wait := jitter(backoff)
		var ra *RetryAfterError
		if errors.As(err, &ra) && ra.After > 0 {
			wait = min(ra.After, maxRetryAfter)
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
		if err := s.sleep(ctx, wait); err != nil {
			return s.errUndelivered(err)
		}
	}
}

// ErrorClass names the kind of a send error for metrics: timeout, network,
// http_408, http_429, http_5xx, http_4xx (rejected) or bulk_items (some
// documents of a bulk request to retry).
func ErrorClass(err error) string {
	var rejected *RejectedError
	var status *StatusError
	var items *bulkItemsError
	switch {
	case errors.As(err, &rejected):
		return "http_4xx"
	case errors.As(err, &status):
		switch {
		case status.Status == 408:
			return "http_408"
		case status.Status == 429:
			return "http_429"
		}
		return "http_5xx"
	case errors.As(err, &items):
		return "bulk_items"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "network"
}

// jitter spreads retries from many sidecars over [d/2, d), so that a
// recovering backend is not hit by all of them at once.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half)
}

// sleep waits d between attempts: waiting out a backend outage is not
// being wedged.
func (s *Shipper) sleep(ctx context.Context, d time.Duration) error {
	s.cfg.SenderPulse.Waiting()
	defer s.cfg.SenderPulse.Busy()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ack reports, for each source in the batch, the end of its last record.
// Sources are few (the files being followed), so a slice beats a map.
func (s *Shipper) ack(b *Batch) {
	var last [8]Ack
	acks := last[:0]
	for _, r := range b.Records {
		found := false
		for i := range acks {
			if acks[i].Source == r.Ack.Source {
				acks[i].Offset = r.Ack.Offset
				found = true
				break
			}
		}
		if !found {
			acks = append(acks, r.Ack)
		}
	}
	for _, a := range acks {
		s.cfg.Acker.Ack(a)
	}
}
