package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// mappingES stands in for Elasticsearch's _bulk API where this machine
// cannot run one: it keeps what Elasticsearch's dynamic mapping keeps,
// each field path's kind as its first value gives it (long, text, date
// when a string reads as one, boolean, object), and refuses a document
// that gives a mapped path another kind with 400, as Elasticsearch does
// (document_parsing_exception): text into a long field, an object where a
// value was, a value where an object was, a string that is not a date
// into a date field. Numbers into text fields are taken, as there.
// Documents are kept by _id; a second create of an _id gets 409.
type mappingES struct {
	mu    sync.Mutex
	kinds map[string]string
	docs  map[string]map[string]any
	// refused counts the 400s answered.
	refused int
}

func newMappingES() *mappingES {
	return &mappingES{kinds: make(map[string]string), docs: make(map[string]map[string]any)}
}

func (es *mappingES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 16<<20)
	es.mu.Lock()
	defer es.mu.Unlock()
	var items []string
	for sc.Scan() {
		var action struct {
			Create struct {
				ID string `json:"_id"`
			} `json:"create"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || !sc.Scan() {
			http.Error(w, "bad action line", http.StatusBadRequest)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			http.Error(w, "bad document: "+err.Error(), http.StatusBadRequest)
			return
		}
		id := action.Create.ID
		switch newKinds, why := es.check(doc); {
		case es.docs[id] != nil:
			items = append(items, `{"create":{"_id":"`+id+`","status":409,"error":{"type":"version_conflict_engine_exception"}}}`)
		case why != "":
			es.refused++
			reason, _ := json.Marshal(why)
			items = append(items, `{"create":{"_id":"`+id+`","status":400,"error":{"type":"document_parsing_exception","reason":`+string(reason)+`}}}`)
		default:
			for p, k := range newKinds {
				es.kinds[p] = k
			}
			es.docs[id] = doc
			items = append(items, `{"create":{"_id":"`+id+`","status":201,"result":"created"}}`)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"took":1,"errors":true,"items":[%s]}`, strings.Join(items, ","))
}

// check returns the kinds doc would add to the mapping, or why it is refused.
func (es *mappingES) check(doc map[string]any) (map[string]string, string) {
	added := make(map[string]string)
	var walk func(path string, v any) string
	walk = func(path string, v any) string {
		if arr, ok := v.([]any); ok {
			for _, e := range arr {
				if why := walk(path, e); why != "" {
					return why
				}
			}
			return ""
		}
		if v == nil {
			return ""
		}
		kind := kindOf(v)
		mapped, ok := es.kinds[path]
		if !ok {
			mapped, ok = added[path]
		}
		switch {
		case !ok:
			added[path] = kind
		case mapped == kind, mapped == "text" && kind != "object", mapped == "long" && kind == "text" && isNumber(v):
		default:
			return fmt.Sprintf("failed to parse field [%s] of type [%s]: got a value of type [%s]", path, mapped, kind)
		}
		if obj, ok := v.(map[string]any); ok {
			for k, e := range obj {
				if why := walk(path+"."+k, e); why != "" {
					return why
				}
			}
		}
		return ""
	}
	for k, v := range doc {
		if why := walk(k, v); why != "" {
			return nil, why
		}
	}
	return added, ""
}

func kindOf(v any) string {
	switch v := v.(type) {
	case json.Number:
		return "long"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case string:
		if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return "date"
		}
		if _, err := time.Parse(time.DateOnly, v); err == nil {
			return "date"
		}
	}
	return "text"
}

func isNumber(v any) bool {
	var n json.Number
	return json.Unmarshal([]byte(fmt.Sprint(v)), &n) == nil
}

// Ensure a parsed line that Elasticsearch refuses for its fields is not
// lost: lines written by log/slog whose status is a word where earlier
// lines had a number, whose err is an object where earlier lines had
// text, or whose started is not a date where earlier lines had one, are
// refused parsed and arrive as their lines, unparsed, with the event's
// time; every other line arrives parsed. All numbered lines once each,
// none twice, and the metric counts the ones sent unparsed.
func TestRun_ElasticsearchMappingConflictsShipTheLine(t *testing.T) {
	t.Parallel()
	es := newMappingES()
	const total = 1000
	app := filepath.Join(t.TempDir(), "app.json")
	f, err := os.Create(app)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(f, nil))
	conflicting := func(i int) bool { return i%10 == 0 || i%7 == 0 || i%13 == 0 }
	lines := make(map[int]bool) // the lines expected unparsed
	for i := 1; i <= total; i++ {
		attrs := []any{"seq", i, "status", 200, "err", "timeout", "started", "2026-12-05T06:00:00Z"}
		if i%10 == 0 {
			attrs[3] = "ok"
		}
		if i%7 == 0 {
			attrs[5] = slog.GroupValue(slog.Int("code", i))
		}
		if i%13 == 0 {
			attrs[7] = "soon"
		}
		lines[i] = conflicting(i)
		logger.Log(context.Background(), slog.LevelInfo, fmt.Sprintf("checkout step seq=%d", i), attrs...)
	}
	f.Close()
	raw, err := os.ReadFile(app)
	if err != nil {
		t.Fatal(err)
	}
	rawLines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")

	m, p := shipJSONToMappingES(t, es, app, total, withEnv(podEnv, map[string]string{
		"TAILCAR_ENV_TAGS":    allEnvTags,
		"TAILCAR_BATCH_BYTES": "16KiB",
	}))

	es.mu.Lock()
	defer es.mu.Unlock()
	var msgs []string
	unparsed := 0
	for id, doc := range es.docs {
		msg, _ := doc["message"].(string)
		msgs = append(msgs, msg)
		n, ok := seq.Of(msg)
		if !ok {
			t.Fatalf("document %s has no numbered message: %v", id, doc)
		}
		if doc["_pod_name_"] != podEnv["_pod_name_"] || doc["_node_ip_"] != podEnv["_node_ip_"] {
			t.Fatalf("document %s lost its tags: %v", id, doc)
		}
		if !lines[n] {
			if doc["seq"] != json.Number(fmt.Sprint(n)) || msg != fmt.Sprintf("checkout step seq=%d", n) {
				t.Fatalf("line %d must arrive parsed: %v", n, doc)
			}
			continue
		}
		unparsed++
		if msg != rawLines[n-1] {
			t.Fatalf("line %d refused for its fields must arrive as the line itself:\n got %q\nwant %q", n, msg, rawLines[n-1])
		}
		for _, parsed := range []string{"seq", "status", "err", "started", "level", "msg"} {
			if _, ok := doc[parsed]; ok {
				t.Fatalf("line %d arrived unparsed but with the parsed field %q: %v", n, parsed, doc)
			}
		}
		var line struct {
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(msg), &line); err != nil {
			t.Fatal(err)
		}
		stamp, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(doc["@timestamp"]))
		if !stamp.Equal(line.Time) || doc["observed_timestamp"] == nil || doc["file"] != app {
			t.Fatalf("line %d sent unparsed must keep its own time, the read time and its file: %v", n, doc)
		}
	}
	requireNoLoss(t, seq.Count(msgs, total), false)
	want := 0
	for _, c := range lines {
		if c {
			want++
		}
	}
	if unparsed != want || es.refused != want {
		t.Fatalf("%d lines arrived unparsed after %d refusals, want %d of each", unparsed, es.refused, want)
	}
	if got := m["tailcar_records_sent_unparsed_total"]; got != float64(want) {
		t.Fatalf("tailcar_records_sent_unparsed_total = %v, want %d", got, want)
	}
	if got := m[`tailcar_records_dropped_total{reason="poison"}`]; got != 0 {
		t.Fatalf("%v records dropped as poison, want none", got)
	}
	if n := strings.Count(p.stderrText(), "sent them as their lines, unparsed"); n != 1 {
		t.Fatalf("the refusals were logged %d times at warning level, want once:\n%s", n, p.stderrText())
	}
}

// Ensure the bound on seeds holds as documented: with the record cap
// raised, a parsed line over 1 MiB carries no seed, so when Elasticsearch
// refuses its fields it is dropped and counted as poison, while a short
// line refused the same way arrives unparsed, and the rest parsed.
func TestRun_ElasticsearchRefusedLongLineIsDropped(t *testing.T) {
	t.Parallel()
	es := newMappingES()
	app := filepath.Join(t.TempDir(), "app.json")
	lines := fmt.Sprintf(`{"msg":"first seq=1","status":200}
{"msg":"long seq=2","status":"ok","pad":"%s"}
{"msg":"short seq=3","status":"ok"}
{"msg":"last seq=4","status":404}
`, strings.Repeat("x", maxSeededLine))
	if err := os.WriteFile(app, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := shipJSONToMappingES(t, es, app, 4, map[string]string{"TAILCAR_MAX_RECORD_BYTES": "4MiB"})
	es.mu.Lock()
	defer es.mu.Unlock()
	got := make(map[int]map[string]any)
	for _, doc := range es.docs {
		n, _ := seq.Of(fmt.Sprint(doc["message"]))
		got[n] = doc
	}
	if len(got) != 3 || got[2] != nil {
		t.Fatalf("documents for lines %v, want 1, 3 and 4 (line 2, over 1 MiB, has no seed)", slices.Sorted(maps.Keys(got)))
	}
	if got[1]["status"] != json.Number("200") || got[4]["status"] != json.Number("404") {
		t.Fatalf("lines 1 and 4 must arrive parsed: %v, %v", got[1], got[4])
	}
	if _, parsed := got[3]["status"]; parsed || !strings.HasPrefix(fmt.Sprint(got[3]["message"]), `{"msg":"short seq=3"`) {
		t.Fatalf("line 3 must arrive unparsed: %v", got[3])
	}
	if m[`tailcar_records_dropped_total{reason="poison"}`] != 1 || m["tailcar_records_sent_unparsed_total"] != 1 {
		t.Fatalf("poison %v, sent unparsed %v; want 1 and 1", m[`tailcar_records_dropped_total{reason="poison"}`], m["tailcar_records_sent_unparsed_total"])
	}
}

// shipJSONToMappingES runs tailcar with TAILCAR_PARSE=json on app, with
// env added, into es until want records are shipped or dropped as poison,
// stops it with SIGTERM and requires exit 0. It returns tailcar's last
// metrics, and tailcar for its logs.
func shipJSONToMappingES(t *testing.T, es *mappingES, app string, want int, env map[string]string) (map[string]float64, *proc) {
	t.Helper()
	srv := httptest.NewServer(es)
	t.Cleanup(srv.Close)
	addr := freePort(t)
	p := startTailcar(t, withEnv(env, map[string]string{
		"TAILCAR_PATHS":        app,
		"TAILCAR_POSITIONS":    filepath.Join(t.TempDir(), "positions"),
		"TAILCAR_PARSE":        "json",
		"TAILCAR_SINK":         "elasticsearch",
		"TAILCAR_SINK_URL":     srv.URL,
		"TAILCAR_BATCH_WAIT":   "100ms",
		"TAILCAR_DRAIN_DELAY":  "0s",
		"TAILCAR_METRICS_ADDR": addr,
	}))
	waitForMetrics(t, addr)
	var m map[string]float64
	waitFor(t, 30*time.Second, "every record shipped or dropped", func() bool {
		m = scrape(t, addr)
		return m["tailcar_records_shipped_total"]+m[`tailcar_records_dropped_total{reason="poison"}`] >= float64(want)
	})
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	return m, p
}
