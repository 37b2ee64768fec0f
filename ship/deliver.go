package ship

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
)

// deliver sends b until the backend has taken or refused every record, or
// ctx ends. A batch the backend finds too large (413) is sent in halves,
// down to single records; a record still too large alone is dropped and
// counted. Then every source's last offset is acknowledged.
func (s *Shipper) deliver(ctx context.Context, b *Batch) error {
	if b.records() > 0 {
		s.inFlightSince.Store(b.Records[firstRecord(b)].Read)
		defer s.inFlightSince.Store(0)
		parts := [][2]int{{0, len(b.Records)}}
		for len(parts) > 0 {
			lo, hi := parts[0][0], parts[0][1]
			parts = parts[1:]
			b.setPart(lo, hi)
			if b.unsent() == 0 {
				continue
			}
			split, err := s.sendPart(ctx, b)
			if err != nil {
				return err
			}
			if !split {
				continue
			}
			var unsent []int
			b.Unsent(func(i int, _ []byte, _ Record) { unsent = append(unsent, i) })
			if len(unsent) == 1 {
				b.state[unsent[0]] = dropLarge
				s.logDrop("too_large", "a record is too large for the backend even alone; dropped", 1, nil)
				continue
			}
			mid := unsent[len(unsent)/2]
			parts = append([][2]int{{lo, mid}, {mid, hi}}, parts...)
		}
		f := b.count()
		if b.unparsedNote != "" {
			s.logFirst(zerolog.WarnLevel, "unparsed", "the backend refused parsed records for their fields; sent them as their lines, unparsed: "+b.unparsedNote, f.unparsed, nil)
		}
		if b.dropNote != "" {
			s.logDrop("poison", "documents the backend refused were dropped: "+b.dropNote, f.poison, nil)
		}
		if b.partial > 0 {
			s.logDrop("partial_success", "the backend took the batch but refused some of its records: "+b.partialNote, b.partial, nil)
		}
		s.settle(f, b.partial)
	}
	s.ack(b)
	return nil
}

func firstRecord(b *Batch) int {
	for i, r := range b.Records {
		if !r.Skip {
			return i
		}
	}
	return 0
}

// sendPart sends the part of b being sent until the backend takes it or
// refuses it, or answers that it is too large (split is true). Every
// attempt has its own timeout. A failure is logged once when it starts
// and once when it ends, however many attempts it takes.
func (s *Shipper) sendPart(ctx context.Context, b *Batch) (split bool, err error) {
	backoff := s.cfg.MinBackoff
	var failingSince time.Time
	for attempt := 1; ; attempt++ {
		n := b.unsent()
		if attempt > 1 {
			s.resent.Add(int64(n))
		}
		started := time.Now()
		actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
		// Waiting for a backend, however long it takes within the attempt's
		// timeout, is not being wedged; a local write that blocks is.
		if !s.cfg.LocalSink {
			s.cfg.SenderPulse.Waiting()
		}
		err := s.cfg.Sink.Send(actx, b)
		s.cfg.SenderPulse.Busy()
		cancel()
		s.cfg.Observer.Attempt(time.Since(started), n, err)
		if err == nil {
			if !failingSince.IsZero() {
				s.cfg.Log.Info().Int("attempts", attempt).Stringer("down_for", time.Since(failingSince).Round(time.Millisecond)).Msg("backend recovered")
			}
			return false, nil
		}
		switch ActionOf(err) {
		case Split:
			s.cfg.Log.Debug().Err(err).Int("records", n).Msg("batch too large for the backend; sending it in halves")
			return true, nil
		case Reject:
			// Acking a dropped batch is deliberate: the checkpoint must pass
			// a poison batch, or every restart would send it again.
			b.settleUnsent(dropBatch)
			s.logDrop(ErrorClass(err), "batch dropped", n, err)
			return false, nil
		}
		if ctx.Err() != nil {
			return false, s.errUndelivered(ctx.Err())
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
			s.logFailure(err)
		} else {
			s.cfg.Log.Debug().Err(err).Int("attempt", attempt).Msg("send failed again")
		}
		s.retries.Add(1)
		wait := jitter(backoff)
		var st *StatusError
		if errors.As(err, &st) && st.RetryAfter > 0 {
			wait = min(st.RetryAfter, maxRetryAfter)
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
		if err := s.sleep(ctx, wait); err != nil {
			return false, s.errUndelivered(err)
		}
	}
}

// logFailure logs the start of a failure that is retried, saying what a
// person can do about the ones that need one.
func (s *Shipper) logFailure(err error) {
	var st *StatusError
	ev := s.cfg.Log.Warn().Err(err)
	msg := "send failed, retrying until the backend accepts; the records wait in the files"
	if errors.As(err, &st) {
		switch c := st.Status; {
		case c >= 300 && c < 400:
			ev = s.cfg.Log.Error().Err(err).Str("location", st.Location)
			msg = "the backend redirects; fix TAILCAR_SINK_URL. Retrying; the records wait in the files"
		case c == 401 || c == 403 || c == 407:
			ev = s.cfg.Log.Error().Err(err)
			msg = "the backend refuses the credentials; fix them. Retrying; the records wait in the files"
		case c == 404:
			ev = s.cfg.Log.Error().Err(err)
			msg = "the backend has no such endpoint; fix TAILCAR_SINK_URL. Retrying; the records wait in the files"
		}
	}
	ev.Msg(msg)
}

// logDrop logs dropped records: at error level the first time for each
// kind, at debug after that.
func (s *Shipper) logDrop(kind, msg string, records int, err error) {
	s.logFirst(zerolog.ErrorLevel, kind, msg, records, err)
}

// logFirst logs at level the first time for each kind, at debug after
// that, so that a backend refusing every batch does not flood the log.
func (s *Shipper) logFirst(level zerolog.Level, kind, msg string, records int, err error) {
	ev := s.cfg.Log.Debug()
	if !s.logged[kind] {
		s.logged[kind] = true
		ev = s.cfg.Log.WithLevel(level)
		msg += "; further ones of this kind are logged at debug"
	}
	ev.Err(err).Str("kind", kind).Int("records", records).Msg(msg)
}

// settle counts what became of a batch's records, of which the backend
// took partial without keeping them (an OTLP partial success).
func (s *Shipper) settle(f fates, partial int) {
	s.unparsed.Add(int64(f.unparsed))
	ok := f.accepted
	partial = min(partial, ok)
	ok -= partial
	s.partiallyRejected.Add(int64(partial))
	s.dropped.Add(int64(partial))
	s.batches.Add(1)
	s.delivered.Add(int64(ok))
	s.dropped.Add(int64(f.poison + f.large + f.rejected))
	s.poison.Add(int64(f.poison))
	s.tooLarge.Add(int64(f.large))
	s.rejected.Add(int64(f.rejected))
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
