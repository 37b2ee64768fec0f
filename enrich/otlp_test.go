package enrich

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// otlpRecord parses line with p, encodes it as a LogRecord and decodes
// that with the official types.
func otlpRecord(t *testing.T, p *Parser, r Record) (*logspb.LogRecord, map[string]*commonpb.AnyValue) {
	t.Helper()
	var f Fields
	if p != nil && p.Parse(r.Message, &f) {
		r.Fields, r.Event = &f, f.Time
	}
	var lr logspb.LogRecord
	if err := proto.Unmarshal(NewOTLPEncoder().AppendRecord(nil, r), &lr); err != nil {
		t.Fatalf("not a LogRecord: %v", err)
	}
	attrs := make(map[string]*commonpb.AnyValue)
	for _, kv := range lr.Attributes {
		if _, dup := attrs[kv.Key]; dup {
			t.Fatalf("attribute %q twice", kv.Key)
		}
		attrs[kv.Key] = kv.Value
	}
	return &lr, attrs
}

// Ensure a line from log/slog's JSON handler becomes a LogRecord with
// its message as the body, its time, its level as the severity, and
// every other field typed as an attribute.
func TestOTLPEncoder_SlogLine(t *testing.T) {
	var line bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&line, nil))
	logger.Warn("disk \"almost\" full", "free_bytes", 1234, "ratio", 0.07, "ok", false, "nothing", nil,
		"disk", map[string]any{"dev": "sda"}, "huge", json.Number("123456789012345678901234567890"), "file", "app.go")
	read := time.Date(2026, 12, 3, 10, 0, 5, 0, time.UTC)
	lr, attrs := otlpRecord(t, mustParser(t, ParseJSON), Record{Read: read, Path: "/var/log/app.json", Message: bytes.TrimSpace(line.Bytes())})

	if got := lr.Body.GetStringValue(); got != `disk "almost" full` {
		t.Errorf("body %q", got)
	}
	if lr.SeverityText != "WARN" || lr.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_WARN {
		t.Errorf("severity %q %v", lr.SeverityText, lr.SeverityNumber)
	}
	if event := time.Unix(0, int64(lr.TimeUnixNano)); event.Equal(read) || time.Since(event) > time.Minute {
		t.Errorf("time_unix_nano %v: want slog's own time", event)
	}
	if lr.ObservedTimeUnixNano != uint64(read.UnixNano()) {
		t.Errorf("observed %d, want the read time", lr.ObservedTimeUnixNano)
	}
	want := map[string]*commonpb.AnyValue{
		"log.file.path": {Value: &commonpb.AnyValue_StringValue{StringValue: "/var/log/app.json"}},
		"free_bytes":    {Value: &commonpb.AnyValue_IntValue{IntValue: 1234}},
		"ratio":         {Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.07}},
		"ok":            {Value: &commonpb.AnyValue_BoolValue{BoolValue: false}},
		"nothing":       {},
		"disk": {Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{
			{Key: "dev", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "sda"}}},
		}}}},
		"huge":     {Value: &commonpb.AnyValue_StringValue{StringValue: "123456789012345678901234567890"}},
		"app_file": {Value: &commonpb.AnyValue_StringValue{StringValue: "app.go"}},
	}
	if len(attrs) != len(want) {
		t.Errorf("attributes %v, want %d of them (no msg, time or level)", attrs, len(want))
	}
	for k, v := range want {
		if !proto.Equal(attrs[k], v) {
			t.Errorf("attribute %s = %v, want %v", k, attrs[k], v)
		}
	}
}

// Ensure nested JSON values become kvlist and array values that hold
// what the JSON held, at every depth: strings unescaped, numbers typed
// as the top-level ones are, null as an empty value, empty objects and
// arrays, keys in their order, escaped keys unescaped.
func TestOTLPEncoder_NestedValues(t *testing.T) {
	p := mustParser(t, ParseJSON)
	values := []string{
		`{"id":7,"tags":["a","b"],"n":null,"ok":true}`,
		// Objects only beside objects in an array: beside a value, the
		// line is refused (TestParser_BadInputIsRefusedWhole).
		`[1,2.5,-3,1e3,123456789012345678901234,"s\u00e9\n",false,null,[],[[]]]`,
		`{"d\u00e9ep":{"x":[{"k":"v","l":[[["in"]]]}],"e":{}},"z":"\ud83d\ude00"}`,
		`{}`,
		`[]`,
		`{"big":"` + strings.Repeat("x", 300) + `","list":[` + strings.Repeat(`{"a":[{"b":"c"},{"d":[1,null]}]},`, 50) + `{}]}`,
	}
	var line strings.Builder
	line.WriteString(`{"msg":"m"`)
	for i, v := range values {
		fmt.Fprintf(&line, `,"v%d":%s`, i, v)
	}
	line.WriteString("}")
	for round := range 2 { // and again with the encoder's buffers in use
		enc := NewOTLPEncoder()
		var f Fields
		if !p.Parse([]byte(line.String()), &f) {
			t.Fatal("line refused")
		}
		var lr logspb.LogRecord
		out := enc.AppendRecord(nil, Record{Read: parseReadAt, Path: "p", Message: []byte(line.String()), Fields: &f})
		if round == 1 {
			out = enc.AppendRecord(nil, Record{Read: parseReadAt, Path: "p", Message: []byte(line.String()), Fields: &f})
		}
		if err := proto.Unmarshal(out, &lr); err != nil {
			t.Fatalf("not a LogRecord: %v", err)
		}
		attrs := map[string]*commonpb.AnyValue{}
		for _, kv := range lr.Attributes {
			attrs[kv.Key] = kv.Value
		}
		for i, v := range values {
			got := fromAnyValue(attrs[fmt.Sprintf("v%d", i)])
			if want := fromJSON(t, v); !reflect.DeepEqual(got, want) {
				t.Errorf("v%d = %#v, want %#v", i, got, want)
			}
		}
	}
}

// Ensure the sizes a line with very many nested values needed are let go
// after it, and a small line's are kept for the next.
func TestOTLPEncoder_LetsGoOfManyNestedValues(t *testing.T) {
	p := mustParser(t, ParseJSON)
	enc := NewOTLPEncoder()
	encode := func(line string) {
		var f Fields
		if !p.Parse([]byte(line), &f) {
			t.Fatalf("line refused: %.40s", line)
		}
		var lr logspb.LogRecord
		if err := proto.Unmarshal(enc.AppendRecord(nil, Record{Read: parseReadAt, Path: "p", Message: []byte(line), Fields: &f}), &lr); err != nil {
			t.Fatal(err)
		}
	}
	encode(`{"msg":"a","n":[` + strings.Repeat(`[1],`, 5000) + `2]}`)
	if enc.values.sizes != nil {
		t.Errorf("%d sizes kept after a line of 10,002 nested values", cap(enc.values.sizes))
	}
	encode(`{"msg":"b","n":[1,2,3]}`)
	if cap(enc.values.sizes) == 0 {
		t.Error("a small line's sizes were not kept")
	}
}

// fromAnyValue is an AnyValue as Go values: maps (keys in order, as
// [][2]any), slices, strings, int64s, float64s, bools, nil.
func fromAnyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_ArrayValue:
		out := []any{}
		for _, e := range x.ArrayValue.Values {
			out = append(out, fromAnyValue(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := [][2]any{}
		for _, kv := range x.KvlistValue.Values {
			out = append(out, [2]any{kv.Key, fromAnyValue(kv.Value)})
		}
		return out
	}
	return nil
}

// fromJSON decodes JSON text into the shapes fromAnyValue gives, with
// numbers as the encoder types them.
func fromJSON(t *testing.T, text string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	var read func() any
	read = func() any {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch x := tok.(type) {
		case json.Delim:
			if x == '{' {
				out := [][2]any{}
				for d.More() {
					k, _ := d.Token()
					out = append(out, [2]any{k, read()})
				}
				d.Token()
				return out
			}
			out := []any{}
			for d.More() {
				out = append(out, read())
			}
			d.Token()
			return out
		case json.Number:
			if n, err := x.Int64(); err == nil {
				return n
			}
			if !strings.ContainsAny(string(x), ".eE") {
				return string(x) // beyond int64: its digits
			}
			f, _ := x.Float64()
			return f
		}
		return tok
	}
	return read()
}

// Ensure an nginx line keeps its numbers as ints, its request parts as
// strings, and has no body twice: the line is the body.
func TestOTLPEncoder_NginxLine(t *testing.T) {
	line := `10.0.0.1 - bob [02/Dec/2026:10:00:00 +0100] "GET /a?seq=1 HTTP/1.1" 404 153 "-" "curl/8 \"quoted\""`
	lr, attrs := otlpRecord(t, mustParser(t, ParseNginx), Record{Read: parseReadAt, Path: "/var/log/nginx/access.log", Message: []byte(line)})
	if lr.Body.GetStringValue() != line {
		t.Errorf("body %q", lr.Body.GetStringValue())
	}
	if lr.TimeUnixNano != uint64(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC).UnixNano()) {
		t.Errorf("time %d", lr.TimeUnixNano)
	}
	if attrs["status"].GetIntValue() != 404 || attrs["body_bytes_sent"].GetIntValue() != 153 ||
		attrs["http_user_agent"].GetStringValue() != `curl/8 "quoted"` || attrs["remote_user"].GetStringValue() != "bob" {
		t.Errorf("attributes %v", attrs)
	}
	if _, ok := attrs["time_local"]; ok {
		t.Error("time_local is the record's time, not an attribute too")
	}
	if lr.SeverityNumber != 0 || lr.SeverityText != "" {
		t.Errorf("severity %v %q from a line without a level", lr.SeverityNumber, lr.SeverityText)
	}
}

// Ensure bytes that are not UTF-8 (which protobuf strings must be) are
// replaced, in the body, the path and the values, and the record still
// decodes.
func TestOTLPEncoder_InvalidUTF8(t *testing.T) {
	lr, _ := otlpRecord(t, nil, Record{Read: parseReadAt, Path: "/var/log/\xffbad.log", Message: []byte("a\xff\xfeb"), Truncated: true})
	if lr.Body.GetStringValue() != "a\uFFFD\uFFFDb" {
		t.Errorf("body %q", lr.Body.GetStringValue())
	}
	// Parsers refuse keys that are not UTF-8 (two keys would become one);
	// values pass, and are repaired.
	line := "10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] \"GET /\xff HTTP/1.1\" 200 1 \"-\" \"ua\xfe\""
	_, attrs := otlpRecord(t, mustParser(t, ParseNginx), Record{Read: parseReadAt, Path: "p", Message: []byte(line)})
	if attrs["http_user_agent"].GetStringValue() != "ua\uFFFD" || attrs["request_uri"].GetStringValue() != "/\uFFFD" {
		t.Errorf("attributes %v", attrs)
	}
	_, attrs = otlpRecord(t, nil, Record{Read: parseReadAt, Path: "p", Message: []byte("x"), Truncated: true, Stream: "stderr"})
	if !attrs["truncated"].GetBoolValue() || attrs["log.iostream"].GetStringValue() != "stderr" {
		t.Errorf("attributes %v", attrs)
	}
}

// Ensure level names and numbers map to the OTel severity numbers.
func TestSeverityNumber(t *testing.T) {
	for level, want := range map[string]int{
		"trace": 1, "DEBUG": 5, "info": 9, "Information": 9, "notice": 10, "warn": 13, "WARNING": 13,
		"error": 17, "ERR": 17, "fatal": 21, "panic": 21, "critical": 21, "emerg": 23,
		"INFO+2": 11, "WARN-4": 9, "ERROR+8": 24, "DEBUG-9": 1, "verbose": 0, "": 0, "INFO+x": 0,
	} {
		if got := SeverityNumber([]byte(level)); got != want {
			t.Errorf("SeverityNumber(%q) = %d, want %d", level, got, want)
		}
	}
	lr, _ := otlpRecord(t, mustParser(t, ParseJSON), Record{Read: parseReadAt, Path: "p", Message: []byte(`{"level":50,"msg":"pino says error"}`)})
	if lr.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_ERROR || lr.SeverityText != "50" {
		t.Errorf("pino level 50: %v %q", lr.SeverityNumber, lr.SeverityText)
	}
	lr, attrs := otlpRecord(t, mustParser(t, ParseJSON), Record{Read: parseReadAt, Path: "p", Message: []byte(`{"severity":"Chatty","msg":"m"}`)})
	if lr.SeverityNumber != 0 || lr.SeverityText != "Chatty" || attrs["severity"] != nil {
		t.Errorf("unknown level: %v %q %v", lr.SeverityNumber, lr.SeverityText, attrs)
	}
}

// Ensure tags become resource attributes under the semantic conventions'
// names, and the path tags of each file join them.
func TestResources(t *testing.T) {
	tagger, _ := NewPathTagger(PathTagsKubernetes)
	res := NewResources([]Tag{{"_pod_name_", "web-1"}, {"_node_name_", "n1"}, {"_pod_ip_", "10.0.0.9"}, {"team", "shop"}}, nil)
	got := decodeResource(t, res.For("/any/file.log"))
	want := map[string]string{"k8s.pod.name": "web-1", "k8s.node.name": "n1", "_pod_ip_": "10.0.0.9", "team": "shop"}
	if len(got) != len(want) {
		t.Fatalf("resource %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("resource %v, want %v", got, want)
		}
	}
	node := NewResources([]Tag{{"_node_name_", "n1"}}, tagger)
	got = decodeResource(t, node.For("/var/log/containers/web-1_shop_nginx-0123abcd.log"))
	want = map[string]string{"k8s.node.name": "n1", "k8s.pod.name": "web-1", "k8s.namespace.name": "shop",
		"k8s.container.name": "nginx", "container.id": "0123abcd"}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("resource %v, want %v", got, want)
		}
	}
	for _, res := range []*Resources{NewResources(nil, nil), NewResources(nil, tagger)} {
		if enc := res.For("/var/log/app/x.log"); len(enc) != 0 || enc == nil {
			t.Fatal("no tags: an empty resource, but a resource (nil would join another file's group)")
		}
	}
}

func decodeResource(t *testing.T, b []byte) map[string]string {
	t.Helper()
	var r resourcepb.Resource
	if err := proto.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for _, kv := range r.Attributes {
		m[kv.Key] = kv.Value.GetStringValue()
	}
	return m
}

// BenchmarkOTLPRecord compares the appender with the official generated
// types (proto.Marshal of a LogRecord built from the same fields), per
// parsed nginx record: the measurement behind the README's choice.
func BenchmarkOTLPRecord(b *testing.B) {
	line := []byte(`10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET /api/v1/items?seq=7 HTTP/1.1" 200 153 "-" "Mozilla/5.0 (X11; Linux x86_64)"`)
	p := mustParser(b, ParseNginx)
	var f Fields
	if !p.Parse(line, &f) {
		b.Fatal("no parse")
	}
	r := Record{Read: parseReadAt, Event: f.Time, Path: "/var/log/nginx/access.log", Message: line, Fields: &f}
	b.Run("appender", func(b *testing.B) {
		enc := NewOTLPEncoder()
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = enc.AppendRecord(buf[:0], r)
		}
	})
	b.Run("generated", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			lr := &logspb.LogRecord{
				TimeUnixNano: uint64(r.Event.UnixNano()), ObservedTimeUnixNano: uint64(r.Read.UnixNano()),
				Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: string(r.Message)}},
				Attributes: []*commonpb.KeyValue{{Key: AttrFilePath,
					Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: r.Path}}}},
			}
			for _, m := range f.members {
				if m.skip {
					continue
				}
				v := &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: string(m.val)}}
				if m.form == formJSON && m.kind == KindNumber {
					n, _ := parseInt(m.val)
					v = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: n}}
				}
				lr.Attributes = append(lr.Attributes, &commonpb.KeyValue{Key: string(m.key), Value: v})
			}
			buf, _ = proto.MarshalOptions{}.MarshalAppend(buf[:0], lr)
		}
	})
}
