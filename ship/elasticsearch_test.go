package ship

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// Ensure a bulk item without a status is not taken for a success (it is
// sent again), and a document refused with 400 is logged once with the
// backend's reason, then dropped and counted.
func TestElasticsearch_ItemsWithoutStatusAndRefusals(t *testing.T) {
	var requests atomic.Int64
	sink := fakeBulk(t, func(_ string, docs []string) []string {
		n := requests.Add(1)
		var items []string
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
		return items
	})
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

// Ensure a parsed document refused with 400 goes again at once, in the
// same Send, as its unparsed form under the same _id, and only it; one
// refused in that form too is dropped, as is a refused document that has
// no other form, and an item refused with another status (403) is
// dropped without a second form. Nothing is sent a third time.
func TestElasticsearch_RefusedFieldsGoUnparsed(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	sink := fakeBulk(t, func(body string, docs []string) []string {
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		var items []string
		for _, doc := range docs {
			switch {
			case strings.Contains(doc, "seq=5"):
				items = append(items, `{"create":{"status":403,"error":{"type":"cluster_block_exception"}}}`)
			case strings.Contains(doc, `"n":"parsed"`) && !strings.Contains(doc, "seq=1 "),
				strings.Contains(doc, "unparsed seq=3"),
				strings.Contains(doc, `"plain seq=4"`):
				items = append(items, `{"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"field [n] of type long"}}}`)
			default:
				items = append(items, `{"create":{"status":201}}`)
			}
		}
		return items
	})
	var logs bytes.Buffer
	// The seed here is the whole unparsed form; enrich has the real ones.
	unparse := func(dst, rec, seed []byte) ([]byte, bool) { return append(dst, seed...), true }
	s, acks, err := shipEach(t, Config{Sink: sink, BatchBytes: 1 << 20, Log: zerolog.New(&logs).Level(zerolog.InfoLevel), Unparse: unparse}, 5,
		func(i int) ([]byte, Meta) {
			m := meta(7, int64(i*10))
			if i == 4 {
				return []byte(`{"message":"plain seq=4"}`), m
			}
			m.UnparsedSeed = [2][]byte{[]byte(`{"message":"unparsed `), []byte(fmt.Sprintf(`seq=%d "}`, i))}
			return []byte(fmt.Sprintf(`{"message":"seq=%d ","n":"parsed"}`, i)), m
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 {
		t.Fatalf("%d requests, want 2: the batch, then the refused parsed ones unparsed:\n%s", len(bodies), strings.Join(bodies, "\n"))
	}
	wantSecond := `{"create":{"_index":"logs","_id":"7-20"}}` + "\n" + `{"message":"unparsed seq=2 "}` + "\n" +
		`{"create":{"_index":"logs","_id":"7-30"}}` + "\n" + `{"message":"unparsed seq=3 "}` + "\n"
	if bodies[1] != wantSecond {
		t.Fatalf("second request:\n%s\nwant:\n%s", bodies[1], wantSecond)
	}
	if st := s.Stats(); st.Delivered != 2 || st.Unparsed != 1 || st.Poison != 3 || st.Dropped != 3 || st.Retries != 0 {
		t.Fatalf("stats %+v; want seq 1 and 2 delivered (2 unparsed), 3, 4 and 5 dropped, no retry", st)
	}
	if last := acks.last(7); last != 50 {
		t.Fatalf("acknowledged to %d, want 50: dropped records are settled too", last)
	}
	if n := strings.Count(logs.String(), "unparsed: status 400"); n != 1 {
		t.Errorf("the refusal of parsed fields was logged %d times, want once with its reason:\n%s", n, logs.String())
	}
}

// fakeBulk returns an elasticsearch sink posting to a test server that
// answers each bulk request with the items answer gives for its body and
// its documents (every second line), uncompressed.
func fakeBulk(t *testing.T, answer func(body string, docs []string) []string) *Elasticsearch {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var docs []string
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		for k := 1; k < len(lines); k += 2 {
			docs = append(docs, lines[k])
		}
		fmt.Fprintf(w, `{"took":1,"errors":true,"items":[%s]}`, strings.Join(answer(string(body), docs), ","))
	}))
	t.Cleanup(srv.Close)
	sink, err := NewElasticsearch(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionNone}, "logs")
	if err != nil {
		t.Fatal(err)
	}
	return sink
}
