package ship

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// Ensure a bulk item without a status is not taken for a success (it is
// sent again), and a document refused with 400 is logged once with the
// backend's reason, then dropped and counted.
func TestElasticsearch_ItemsWithoutStatusAndRefusals(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		var items []string
		docs := 3
		if n > 1 {
			docs = 1
		}
		for i := range docs {
			switch {
			case n == 1 && i == 0:
				items = append(items, `{"create":{"_id":"x"}}`) // no status
			case n == 1 && i == 1:
				items = append(items, `{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"field [x] of type long"}}}`)
			default:
				items = append(items, `{"create":{"status":201}}`)
			}
		}
		fmt.Fprintf(w, `{"took":1,"errors":true,"items":[%s]}`, strings.Join(items, ","))
	}))
	defer srv.Close()
	sink, _ := NewElasticsearch(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionNone}, "logs")
	var logs bytes.Buffer
	s, _, err := shipAll(t, Config{Sink: sink, BatchBytes: 1 << 20, Log: zerolog.New(&logs).Level(zerolog.InfoLevel)}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Delivered != 2 || st.Poison != 1 || requests.Load() != 2 || st.Resent != 1 {
		t.Fatalf("stats %+v after %d requests; want the status-less item sent again, the 400 dropped", st, requests.Load())
	}
	if n := strings.Count(logs.String(), "mapper_parsing_exception"); n != 1 {
		t.Errorf("the refusal was logged %d times, want once with its reason:\n%s", n, logs.String())
	}
}

// Ensure a long bulk answer is read as a stream: a 64 MiB answer whose
// items carry padding is read without holding it, and extra items past
// the documents sent are not kept.
func TestElasticsearch_LongAnswerIsStreamed(t *testing.T) {
	// Built once, so that the server allocates nothing while answering:
	// the allocations measured are the client's.
	item := []byte(`,{"create":{"status":201,"result":"created","pad":"` + strings.Repeat("p", 64<<10) + `"}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"took":1,"errors":true,"items":[`))
		w.Write(item[1:])
		for range 1023 {
			w.Write(item)
		}
		w.Write([]byte(`]}`))
	}))
	defer srv.Close()
	sink, _ := NewElasticsearch(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionNone}, "logs")
	b := &Batch{}
	for i := range 10 {
		b.add([]byte(`{}`), meta(1, int64(i)))
	}
	b.setPart(0, 10)
	allocs := testing.AllocsPerRun(1, func() {
		b.bodyReady = false
		if err := sink.Send(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	})
	var ms0, ms1 runtimeMem
	ms0.read()
	b.bodyReady = false
	if err := sink.Send(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	ms1.read()
	t.Logf("a 64 MiB answer: %.0f allocations, %.1f MiB allocated", allocs, float64(ms1.total-ms0.total)/(1<<20))
	if grew := ms1.total - ms0.total; grew > 16<<20 {
		t.Errorf("reading a 64 MiB answer allocated %d MiB; it must be streamed", grew>>20)
	}
}

// runtimeMem reads the bytes allocated so far.
type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.total = ms.TotalAlloc
}
