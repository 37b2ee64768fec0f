package ship

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// scriptedSink answers each send with the next error of its script, then
// nil, and records how many records each send carried and their bodies.
type scriptedSink struct {
	mu     sync.Mutex
	script []error
	sizes  []int
	bodies [][]byte
	at     []time.Time
}

func (s *scriptedSink) Send(_ context.Context, b *Batch) error {
	body, _ := b.Body(func(dst []byte, b *Batch) ([]byte, error) { return append(dst, b.UnsentData()...), nil })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes = append(s.sizes, b.unsent())
	s.bodies = append(s.bodies, append([]byte(nil), body...))
	s.at = append(s.at, time.Now())
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		return err
	}
	return nil
}

// sent returns the sizes and times of the sends so far.
func (s *scriptedSink) sent() ([]int, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...), append([]time.Time(nil), s.at...)
}

// runShipper runs a shipper over sink inside a synctest bubble, adds n
// records, closes it and waits for Run to end.
func runShipper(t *testing.T, cfg Config, n int) (*Shipper, *ackLog, error) {
	t.Helper()
	acks := &ackLog{}
	cfg.Acker = acks
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = 1 << 20
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = time.Second
	}
	s := NewShipper(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := 1; i <= n; i++ {
		if err := s.Add(ctx, fmt.Appendf(nil, `{"message":"seq=%d"}`, i), meta(7, int64(i*10))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return s, acks, <-done
}

// Ensure a 429 with Retry-After is honoured to the second and the very
// same body is sent again (synctest's clock: exact, and instant).
func TestShipper_RetryAfterIsHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &scriptedSink{script: []error{&StatusError{Status: 429, RetryAfter: 7 * time.Second}}}
		s, _, err := runShipper(t, Config{Sink: sink}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(sink.bodies) != 2 || !bytes.Equal(sink.bodies[0], sink.bodies[1]) {
			t.Fatalf("%d sends; the retry must carry the same body", len(sink.bodies))
		}
		if waited := sink.at[1].Sub(sink.at[0]); waited != 7*time.Second {
			t.Errorf("retried after %s; Retry-After asked for 7s", waited)
		}
		if st := s.Stats(); st.Retries != 1 || st.Resent != 100 || st.Delivered != 100 {
			t.Errorf("stats %+v; want 1 retry resending 100 records", st)
		}
	})
}

// Ensure the backoff between attempts doubles from MinBackoff, with
// jitter in [d/2, d), and is capped at MaxBackoff.
func TestShipper_BackoffDoublesAndIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var script []error
		for range 8 {
			script = append(script, &StatusError{Status: 503})
		}
		sink := &scriptedSink{script: script}
		_, _, err := runShipper(t, Config{Sink: sink, MinBackoff: time.Second, MaxBackoff: 8 * time.Second}, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{1, 2, 4, 8, 8, 8, 8, 8}
		for i, w := range want {
			got := sink.at[i+1].Sub(sink.at[i])
			if lo, hi := w*time.Second/2, w*time.Second; got < lo || got >= hi {
				t.Errorf("wait %d: %s, want in [%s, %s)", i+1, got, lo, hi)
			}
		}
	})
}

// Ensure each answer of the contract's "Delivery answers" leads to what
// it says: retried (nothing dropped), split, or dropped and counted.
func TestShipper_DeliveryAnswers(t *testing.T) {
	for _, tc := range []struct {
		status            int
		retried, rejected bool
	}{
		{301, true, false}, {302, true, false}, {307, true, false}, {308, true, false},
		{401, true, false}, {403, true, false}, {404, true, false}, {407, true, false},
		{408, true, false}, {429, true, false}, {500, true, false}, {502, true, false}, {503, true, false},
		{400, false, true}, {405, false, true}, {409, false, true}, {422, false, true},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sink := &scriptedSink{script: []error{&StatusError{Status: tc.status}, &StatusError{Status: tc.status}}}
				s, acks, err := runShipper(t, Config{Sink: sink}, 10)
				if err != nil {
					t.Fatal(err)
				}
				st := s.Stats()
				switch {
				case tc.retried && (st.Delivered != 10 || st.Dropped != 0 || st.Retries != 2):
					t.Errorf("stats %+v; want 2 retries, then all 10 delivered", st)
				case tc.rejected && (st.Delivered != 0 || st.Rejected != 10 || st.Dropped != 10 || len(sink.sizes) != 1):
					t.Errorf("stats %+v after %d sends; want the batch dropped at once", st, len(sink.sizes))
				}
				if acks.last(7) != 100 {
					t.Errorf("last ack %d, want 100: the checkpoint passes a delivered or a dropped batch", acks.last(7))
				}
			})
		})
	}
}

// Ensure a 413 splits the batch until the parts fit, and a record too
// large even alone is dropped and counted, never the others.
func TestShipper_TooLargeSplits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &sizeLimitSink{limit: 300, huge: "seq=13\""}
		s, acks, err := runShipper(t, Config{Sink: sink}, 40)
		if err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		if st.Delivered != 39 || st.TooLarge != 1 || st.Dropped != 1 {
			t.Fatalf("stats %+v; want 39 delivered and the one huge record dropped as too large", st)
		}
		got := strings.Join(sink.accepted, "\n")
		for i := 1; i <= 40; i++ {
			if n := strings.Count(got, fmt.Sprintf("seq=%d\"", i)); n != 1 && i != 13 {
				t.Errorf("record %d accepted %d times", i, n)
			}
		}
		if acks.last(7) != 400 {
			t.Errorf("last ack %d, want 400", acks.last(7))
		}
	})
}

// sizeLimitSink answers 413 to bodies over limit bytes, and always to a
// body holding huge.
type sizeLimitSink struct {
	limit    int
	huge     string
	accepted []string
}

func (s *sizeLimitSink) Send(_ context.Context, b *Batch) error {
	data := string(b.UnsentData())
	if len(data) > s.limit || strings.Contains(data, s.huge) {
		return &StatusError{Status: 413}
	}
	s.accepted = append(s.accepted, strings.Split(strings.TrimSpace(data), "\n")...)
	return nil
}

// Ensure filtered lines' acks travel in order with the records: the
// checkpoint passes them once what came before is delivered, and a batch
// of nothing but acks sends nothing.
func TestShipper_SkipAcksInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &scriptedSink{}
		acks := &ackLog{}
		s := NewShipper(Config{Sink: sink, Acker: acks, Log: zerolog.Nop(), BatchBytes: 1 << 20, BatchWait: time.Second})
		ctx := context.Background()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		now := time.Now()
		for i := 1; i <= 1000; i++ {
			var err error
			if i%10 == 0 {
				err = s.Add(ctx, []byte(`{}`), meta(7, int64(i)))
			} else {
				err = s.Skip(ctx, Ack{Source: 7, Offset: int64(i)}, now, now)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := len(s.cur.Records); n > 201 {
			t.Errorf("%d entries for 100 records and 900 filtered lines; runs of filtered lines must share one", n)
		}
		s.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if acks.last(7) != 1000 || s.Stats().Delivered != 100 || s.Stats().Added != 100 {
			t.Fatalf("last ack %d, stats %+v", acks.last(7), s.Stats())
		}

		// Only filtered lines: acked without a send.
		sink2 := &scriptedSink{}
		acks2 := &ackLog{}
		s2 := NewShipper(Config{Sink: sink2, Acker: acks2, Log: zerolog.Nop(), BatchBytes: 1 << 20, BatchWait: time.Second})
		go func() { done <- s2.Run(ctx) }()
		if err := s2.Skip(ctx, Ack{Source: 3, Offset: 99}, now, now); err != nil {
			t.Fatal(err)
		}
		s2.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(sink2.sizes) != 0 || acks2.last(3) != 99 {
			t.Fatalf("%d sends, last ack %d; want none and 99", len(sink2.sizes), acks2.last(3))
		}
	})
}

// Ensure records known of a whole batch wait before they were read leave
// at the producer's Flush, in its own wake-up, as one batch for the turn.
func TestShipper_FlushSendsTheDueTurnAsOneBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &scriptedSink{}
		const wait = time.Hour
		s := NewShipper(Config{Sink: sink, Acker: &ackLog{}, Log: zerolog.Nop(), BatchBytes: 1 << 20, BatchWait: wait})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		for i := range 100 {
			m := meta(1, int64(i))
			m.Since = m.ReadAt.Add(-wait)
			if err := s.Add(ctx, []byte(`{}`), m); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		s.Flush()
		synctest.Wait()
		if sizes, _ := sink.sent(); len(sizes) != 1 || sizes[0] != 100 || time.Since(start) != 0 {
			t.Fatalf("batches %v after %s; want one of 100 at once", sizes, time.Since(start))
		}
		s.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// Ensure Flush leaves a batch that is not due yet to fill, and the
// sender's timer sends it exactly when it is due.
func TestShipper_FlushKeepsABatchThatIsNotDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &scriptedSink{}
		s := NewShipper(Config{Sink: sink, Acker: &ackLog{}, Log: zerolog.Nop(), BatchBytes: 1 << 20, BatchWait: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		start := time.Now()
		for turn := range 3 {
			for i := range 10 {
				if err := s.Add(ctx, []byte(`{}`), meta(1, int64(turn*10+i))); err != nil {
					t.Fatal(err)
				}
			}
			s.Flush()
			synctest.Wait()
			if sizes, _ := sink.sent(); len(sizes) != 0 {
				t.Fatalf("Flush sent a batch that was not due: %v", sizes)
			}
			time.Sleep(10 * time.Second)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		sizes, at := sink.sent()
		if len(sizes) != 1 || sizes[0] != 30 || at[0].Sub(start) != time.Minute {
			t.Fatalf("batches %v at %v; want one of 30 when due, at 1m", sizes, at)
		}
		s.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// Ensure an HTTP backend's redirects are never followed: a 302 is not
// turned into a GET that seems to deliver, a 307 does not carry the body
// and credentials to the other host, and the batch waits until the URL
// answers 2xx itself.
func TestHTTP_RedirectsAreNotFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(200)
	}))
	defer other.Close()
	for _, status := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			elsewhere.Store(0)
			var redirected atomic.Int64
			c := &capture{respond: func(n int, _ []byte, w http.ResponseWriter, r *http.Request) bool {
				if n < 3 {
					redirected.Add(1)
					w.Header().Set("Location", other.URL+"/stolen")
					w.WriteHeader(status)
					return false
				}
				return true
			}}
			srv := httptest.NewServer(c)
			defer srv.Close()
			var logs bytes.Buffer
			sink, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionNone, User: "u", Password: "hunter22"})
			s, acks, err := shipAll(t, Config{Sink: sink, BatchBytes: 1 << 20, Log: zerolog.New(&logs).Level(zerolog.InfoLevel)}, 50)
			if err != nil {
				t.Fatal(err)
			}
			requireEach(t, c.got(), 50)
			if elsewhere.Load() != 0 {
				t.Fatalf("the redirect was followed: %d requests reached the other host", elsewhere.Load())
			}
			if st := s.Stats(); st.Dropped != 0 || st.Retries != 3 || acks.last(7) != 500 {
				t.Errorf("stats %+v; want 3 retries and nothing dropped", st)
			}
			lines := 0
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, other.URL+"/stolen") {
					lines++
				}
			}
			if lines != 1 {
				t.Errorf("the Location was logged in %d lines, want one:\n%s", lines, logs.String())
			}
		})
	}
}

// Ensure an answer that echoes the credentials back is logged masked.
func TestHTTP_SecretsInAnswersAreMasked(t *testing.T) {
	const token = "s3cr3t-t0ken-value"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad request; you sent: "+r.Header.Get("Authorization")+" and X-Api-Key: "+r.Header.Get("X-Api-Key"), 400)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	sink, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionNone, Token: token,
		Headers: map[string]string{"X-Api-Key": "header-secret-42"}})
	s, _, err := shipAll(t, Config{Sink: sink, Log: zerolog.New(&logs)}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if s.Stats().Rejected != 5 {
		t.Fatalf("stats %+v", s.Stats())
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), "header-secret-42") {
		t.Fatalf("a secret was logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "Bearer ***") {
		t.Errorf("the sample was not logged masked:\n%s", logs.String())
	}
}

// Ensure the Retry-After header of an HTTP answer reaches the retry.
func TestHTTP_RetryAfterHeaderIsRead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "42")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	defer srv.Close()
	sink, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionGzip})
	b := &Batch{}
	b.add([]byte(`{}`), meta(1, 1))
	b.setPart(0, 1)
	err := sink.Send(context.Background(), b)
	st, ok := err.(*StatusError)
	if !ok || st.Status != 429 || st.RetryAfter != 42*time.Second || ActionOf(err) != Retry {
		t.Fatalf("got %v; want a 429 to retry after 42s", err)
	}
}

// Ensure a batch used again after a reset keeps nothing of its former
// records: their entries are reused and written in place (Batch.next).
func TestBatch_ReusedEntriesKeepNothingOfTheFormer(t *testing.T) {
	b := &Batch{}
	read, event := time.Unix(100, 1), time.Unix(90, 2)
	b.add([]byte(`{"n":1}`), Meta{Ack: Ack{Source: 1, Offset: 10}, Pos: 10, ReadAt: read, Event: event})
	b.skip(Ack{Source: 1, Offset: 20})
	b.add([]byte(`{"n":3}`), Meta{Ack: Ack{Source: 1, Offset: 30}, Pos: 30, ReadAt: read, Event: event, Resource: []byte("r1")})
	b.add([]byte(`{"n":4}`), Meta{Ack: Ack{Source: 1, Offset: 40}, Pos: 40, ReadAt: read, Event: event, Resource: []byte("r2")})
	b.reset()
	zero := time.Time{}.UnixNano()
	b.skip(Ack{Source: 2, Offset: 5})
	for n := int64(1); n <= 3; n++ {
		b.add([]byte(`{"n":0}`), Meta{Ack: Ack{Source: 2, Offset: 5 + 10*n}, Pos: 5 + 10*n})
	}
	want := []Record{
		{stop: 0, Ack: Ack{Source: 2, Offset: 5}, Skip: true},
		{stop: 8, Ack: Ack{Source: 2, Offset: 15}, Pos: 15, Read: zero, Event: zero},
		{stop: 16, Ack: Ack{Source: 2, Offset: 25}, Pos: 25, Read: zero, Event: zero},
		{stop: 24, Ack: Ack{Source: 2, Offset: 35}, Pos: 35, Read: zero, Event: zero},
	}
	if !reflect.DeepEqual(b.Records, want) {
		t.Fatalf("records after a reset:\n got %+v\nwant %+v", b.Records, want)
	}
}
