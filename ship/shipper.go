// Package ship batches encoded records, sends them to a sink with retries,
// and acknowledges what the sink accepted so that checkpoints can move.
//
//	shipper.go   the Shipper: batches filled by the producer, sent in order
//	batch.go     a batch, its records and what became of each
//	deliver.go   one batch's delivery: retries, backoff, 413 splits, acks
//	errors.go    what an answer means: retry, split or reject
//	client.go    HTTP posting, TLS, bounded answers, masked secrets
//	compress.go  gzip and zstd, encoders reused
//	stdout.go, http.go, elasticsearch.go, loki.go, otlp.go: the sinks
package ship

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Ack says that every record of Source up to Offset has been delivered.
type Ack struct {
	Source uint64
	Offset int64
}

// Acker receives acks. For one source they arrive in the order the records
// were added, so the last ack seen is the position to checkpoint.
type Acker interface {
	Ack(Ack)
}

// Pulse shows a liveness check that a loop is not wedged: Busy when it
// starts a step, Waiting when it blocks on its input or on the backend.
type Pulse interface {
	Busy()
	Waiting()
}

// Observer is told how every send attempt went: metrics implement it.
// err is nil when the sink accepted the batch; ErrorClass names it.
type Observer interface {
	Attempt(took time.Duration, records int, err error)
}

// Sink delivers a batch. Send returns nil once the backend has accepted
// or refused every unsent record of the batch (see Batch.Accept and
// Batch.Drop; records not marked are taken as accepted), and otherwise an
// error that ActionOf turns into a retry, a split or a rejection.
type Sink interface {
	Send(ctx context.Context, b *Batch) error
}

// Defaults for the tunables that are not part of the user-facing contract.
const (
	// DefaultBatches bounds memory: one batch fills while the others wait
	// or are in flight, and a producer blocks when all are taken.
	DefaultBatches = 3
	// DefaultAttemptTimeout bounds one send, so a stalled connection is
	// abandoned and retried instead of holding the pipeline.
	DefaultAttemptTimeout = 30 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between
	// attempts; the cap keeps recovery quick once a backend is back.
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	// maxRetryAfter caps a backend's own request to wait, so a bogus
	// header cannot stall shipping for hours.
	maxRetryAfter = 5 * time.Minute
)

// Config configures a Shipper.
type Config struct {
	Sink  Sink
	Acker Acker
	Log   zerolog.Logger
	// LocalSink says a send is local work (a write to stdout), not a wait
	// on a backend: one that blocks is a stuck step for the probe.
	LocalSink bool
	// BatchBytes closes a batch once its encoded records, with their
	// unparsed seeds, reach this size.
	BatchBytes int
	// BatchWait closes a batch once its oldest record has waited this long.
	BatchWait time.Duration
	// Batches is how many batch buffers exist; zero means DefaultBatches.
	Batches int
	// AttemptTimeout bounds each send; zero means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts; zero
	// means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// SenderPulse is the send loop's, ProducerPulse the producer's while
	// it is blocked in Add: while the backend is down or slow both are
	// waiting, not wedged, and a liveness check must see them so.
	SenderPulse, ProducerPulse Pulse
	// Unparse builds a record's unparsed form from the record and its
	// Meta.UnparsedSeed, for a sink whose backend refused the record for
	// its parsed fields; false when it cannot.
	Unparse func(dst, rec, seed []byte) ([]byte, bool)
	// Observer, when set, is told about every attempt.
	Observer Observer
}

// Stats counts what the Shipper did.
type Stats struct {
	Added, Delivered, Batches int64
	// Dropped is every record dropped by the backend's answer: Rejected
	// (batches refused with a 4xx), Poison (single documents a bulk
	// answer refused), TooLarge (a record a 413 refused even alone) and
	// PartiallyRejected (records an OTLP partial success refused).
	Dropped, Rejected, Poison, TooLarge, PartiallyRejected int64
	// Retries counts attempts after the first; Resent the records they
	// carried again.
	Retries, Resent int64
	// Unparsed counts delivered records that the backend refused with
	// their parsed fields and took as their lines.
	Unparsed int64
}

// Undelivered is how many records were added and neither delivered nor
// dropped: what a stop leaves behind.
func (st Stats) Undelivered() int64 { return st.Added - st.Delivered - st.Dropped }

// Shipper batches records and delivers them in order through one sink.
// Add, Skip and Flush are called by a single producer; Run sends.
type Shipper struct {
	cfg Config

	free  chan *Batch // empty batches; a producer waits here when all are taken
	queue chan *Batch // full batches in the order they were closed
	kick  chan struct{}

	mu     sync.Mutex
	cur    *Batch // the batch being filled, nil when none
	closed bool

	added, delivered, batches                              atomic.Int64
	dropped, rejected, poison, tooLarge, partiallyRejected atomic.Int64
	retries, resent, unparsed                              atomic.Int64
	// inFlightSince is when the oldest record of the batch being sent was
	// read, Unix nanoseconds; 0 when none is.
	inFlightSince atomic.Int64

	// logged says which kinds of drop have been logged at error level;
	// later ones are logged at debug. Touched only by Run's goroutine.
	logged map[string]bool
}

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("shipper is closed")

// NewShipper returns a Shipper; call Run to start sending.
func NewShipper(cfg Config) *Shipper {
	if cfg.Batches <= 0 {
		cfg.Batches = DefaultBatches
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.SenderPulse == nil {
		cfg.SenderPulse = noPulse{}
	}
	if cfg.ProducerPulse == nil {
		cfg.ProducerPulse = noPulse{}
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	s := &Shipper{
		cfg:    cfg,
		free:   make(chan *Batch, cfg.Batches),
		queue:  make(chan *Batch, cfg.Batches),
		kick:   make(chan struct{}, 1),
		logged: make(map[string]bool),
	}
	for range cfg.Batches {
		s.free <- &Batch{unparse: cfg.Unparse, kept: 4 * cfg.BatchBytes}
	}
	return s
}

type noPulse struct{}

func (noPulse) Busy()    {}
func (noPulse) Waiting() {}

type noObserver struct{}

func (noObserver) Attempt(time.Duration, int, error) {}

// Add appends one encoded record (without separator). A batch is due
// BatchWait after the earliest Since of its records.
//
// A batch that is due as soon as it opens (its records were known of a
// whole wait before they were read) is held until the producer calls
// Flush, so that the rest of the producer's turn joins it; the producer
// must call Flush when it runs out of records for now. Any other batch is
// sent when it is due, Flush or not.
//
// Add blocks while every batch buffer is full or in flight, which is how a
// slow or down backend pauses reading. rec is copied.
func (s *Shipper) Add(ctx context.Context, rec []byte, m Meta) error {
	b, err := s.current(ctx, m.ReadAt, m.Since)
	if err != nil {
		return err
	}
	b.add(rec, m)
	s.added.Add(1)
	// A record's seed is held beside it: both count, so that memory stays
	// within Batches times BatchBytes.
	if len(b.Data)+len(b.seeds) >= s.cfg.BatchBytes {
		s.closeCurrentLocked()
	}
	s.mu.Unlock()
	return nil
}

// Skip acknowledges records that are not shipped (filtered lines), in
// order with the records around them: the ack moves the checkpoint once
// everything before it is delivered.
func (s *Shipper) Skip(ctx context.Context, ack Ack, readAt, since time.Time) error {
	b, err := s.current(ctx, readAt, since)
	if err != nil {
		return err
	}
	b.skip(ack)
	s.mu.Unlock()
	return nil
}

// current returns the batch being filled, opening one when there is none,
// with s.mu held.
func (s *Shipper) current(ctx context.Context, readAt, since time.Time) (*Batch, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.cur != nil {
		return s.cur, nil
	}
	s.mu.Unlock()
	b, err := s.takeFree(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	// Only the producer sets cur, so it is still nil here.
	s.cur = b
	if since.IsZero() || since.After(readAt) {
		since = readAt
	}
	b.due = since.Add(s.cfg.BatchWait)
	if b.due.After(readAt) {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return b, nil
}

// Flush is the producer saying it has no more records for now: the batch
// being filled leaves at once if it is due. One that is not was given to
// the sender's timer when it opened. Sending in the producer's wake-up,
// rather than on a timer, keeps a steady trickle at one wake-up a batch.
func (s *Shipper) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && !s.closed && !time.Now().Before(s.cur.due) {
		s.closeCurrentLocked()
	}
}

func (s *Shipper) takeFree(ctx context.Context) (*Batch, error) {
	select {
	case b := <-s.free:
		return b, nil
	default:
	}
	s.cfg.ProducerPulse.Waiting()
	defer s.cfg.ProducerPulse.Busy()
	select {
	case b := <-s.free:
		return b, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free batch: %w", ctx.Err())
	}
}

// closeCurrentLocked queues the batch being filled. The queue has room for
// every batch, so this never blocks.
func (s *Shipper) closeCurrentLocked() {
	if s.cur == nil {
		return
	}
	s.queue <- s.cur
	s.cur = nil
}

// Close queues the last partial batch and ends the input: Run returns once
// everything queued has been delivered.
func (s *Shipper) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.closeCurrentLocked()
	close(s.queue)
}

// Stats returns the counters so far.
func (s *Shipper) Stats() Stats {
	return Stats{
		Added:             s.added.Load(),
		Delivered:         s.delivered.Load(),
		Batches:           s.batches.Load(),
		Dropped:           s.dropped.Load(),
		Rejected:          s.rejected.Load(),
		Poison:            s.poison.Load(),
		TooLarge:          s.tooLarge.Load(),
		PartiallyRejected: s.partiallyRejected.Load(),
		Retries:           s.retries.Load(),
		Resent:            s.resent.Load(),
		Unparsed:          s.unparsed.Load(),
	}
}

// OldestUnacked returns when the oldest record not yet acknowledged was
// read, or the zero time when every record is.
func (s *Shipper) OldestUnacked() time.Time {
	if t := s.inFlightSince.Load(); t != 0 {
		return time.Unix(0, t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		for _, r := range s.cur.Records {
			if !r.Skip {
				return time.Unix(0, r.Read)
			}
		}
	}
	return time.Time{}
}

// Run sends batches in order until Close has been called and the queue is
// empty (nil), or ctx ends first (an error: records were left undelivered).
func (s *Shipper) Run(ctx context.Context) error {
	wait := stoppedTimer()
	for {
		s.cfg.SenderPulse.Waiting()
		select {
		case b, ok := <-s.queue:
			if !ok {
				return nil
			}
			s.cfg.SenderPulse.Busy()
			if err := s.deliver(ctx, b); err != nil {
				return err
			}
			b.reset()
			s.free <- b
		case <-s.kick:
			s.mu.Lock()
			if s.cur != nil {
				wait.Reset(time.Until(s.cur.due))
			}
			s.mu.Unlock()
		case <-wait.C:
			s.mu.Lock()
			if s.cur != nil && !s.closed {
				if due := time.Until(s.cur.due); due > 0 {
					wait.Reset(due)
				} else {
					s.closeCurrentLocked()
				}
			}
			s.mu.Unlock()
		case <-ctx.Done():
			return s.errUndelivered(ctx.Err())
		}
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// errUndelivered says that the shipper stopped with records left.
func (s *Shipper) errUndelivered(cause error) error {
	return fmt.Errorf("%d records left undelivered: %w", s.Stats().Undelivered(), cause)
}
