package enrich

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"
)

var parseReadAt = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// mustParser builds a parser the way the configuration does.
func mustParser(tb testing.TB, format string, taken ...string) *Parser {
	tb.Helper()
	cfg := ParserConfig{Format: format, TimeKeys: DefaultTimeKeys(format), Taken: taken}
	if format == ParseJSON || format == ParseLogfmt {
		cfg.MessageKeys = []string{"message", "msg"}
	}
	if format == ParseRegex {
		cfg.Regex = regexp.MustCompile(`^(?P<level>[A-Z]+) (?P<time>\S+) (?P<message>.*)$`)
	}
	p, err := NewParser(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// record parses line with p and decodes the record it becomes; ok says
// whether the line parsed.
func record(t *testing.T, enc *Encoder, p *Parser, line string) (map[string]any, bool) {
	t.Helper()
	var f Fields
	r := Record{Read: parseReadAt, Path: "/var/log/app.log", Message: []byte(line)}
	ok := p.Parse([]byte(line), &f)
	if ok {
		r.Fields = &f
		r.Event = f.Time
	}
	out := enc.AppendRecord(nil, r)
	requireNoDuplicateKeys(t, out)
	requireNoPathClash(t, out)
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("record is not JSON: %v\n%s", err, out)
	}
	return m, ok
}

// requireNoPathClash fails when a record holds a field path, with dots
// read as Elasticsearch reads them, that is both a value and an object,
// or deeper than it maps (an object of 20 names, a value of 21). It is
// written apart from fieldPaths, over encoding/json's reading.
func requireNoPathClash(t *testing.T, obj []byte) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(obj))
	d.UseNumber()
	var doc any
	if err := d.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	values, objects := map[string]bool{}, map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 && path != "" {
				objects[path] = true
			}
			for k, inner := range v {
				if path != "" {
					k = path + "." + k
				}
				parts := strings.Split(k, ".")
				for i := 1; i < len(parts); i++ {
					objects[strings.Join(parts[:i], ".")] = true
				}
				walk(k, inner)
			}
		case []any:
			for _, e := range v {
				walk(path, e)
			}
		case nil:
		default:
			values[path] = true
		}
	}
	walk("", doc)
	for p := range values {
		if objects[p] {
			t.Fatalf("%q is a value and an object in %s", p, obj)
		}
		if names := strings.Count(p, ".") + 1; names > 20 {
			t.Fatalf("value %q is %d names deep in %.200s", p, names, obj)
		}
	}
	for p := range objects {
		if names := strings.Count(p, ".") + 1; names >= 20 {
			t.Fatalf("object %q is %d names deep in %.200s", p, names, obj)
		}
	}
}

// requireNoDuplicateKeys fails when the object's top level repeats a key,
// which encoding/json would silently accept.
func requireNoDuplicateKeys(t *testing.T, obj []byte) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(obj))
	// One set of keys per object being read, innermost last; nil for an
	// array.
	var open []map[string]bool
	expectKey := func() bool { return len(open) > 0 && open[len(open)-1] != nil }
	for {
		// In an object, a string token that comes where a key may come is
		// a key: the decoder reads values whole after it.
		isKey := expectKey()
		tok, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				open = append(open, map[string]bool{})
			case '[':
				open = append(open, nil)
			default:
				open = open[:len(open)-1]
			}
			continue
		case string:
			if isKey {
				if open[len(open)-1][v] {
					t.Fatalf("key %q twice in one object of %s", v, obj)
				}
				if !IsFieldName([]byte(v)) {
					t.Fatalf("key %q, which Elasticsearch refuses, in %s", v, obj)
				}
				open[len(open)-1][v] = true
				if err := readValue(d, &open); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// readValue reads an object member's value: a scalar whole, or the
// opening of an object or array, which it pushes on open.
func readValue(d *json.Decoder, open *[]map[string]bool) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		*open = append(*open, map[string]bool{})
	case json.Delim('['):
		*open = append(*open, nil)
	}
	return nil
}

func mustEncoder(t testing.TB, tags ...Tag) *Encoder {
	enc, err := NewEncoder(tags)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// Ensure nginx's combined format (Debian's default), Apache's common and
// combined formats, escaped quotes and "-" give the fields named after
// nginx's variables, numbers as numbers, the request in its parts (whole
// only when it has none), and time_local as @timestamp with the read
// time kept.
func TestParser_Nginx(t *testing.T) {
	enc := mustEncoder(t)
	p := mustParser(t, ParseNginx)
	for _, tc := range []struct {
		name, line string
		want       map[string]any
		absent     []string
	}{
		{"combined", `10.0.0.1 - alice [02/Dec/2026:11:59:58 +0100] "GET /api/v1/items?seq=7 HTTP/1.1" 404 153 "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64)"`,
			map[string]any{"remote_addr": "10.0.0.1", "remote_user": "alice",
				"request_method": "GET", "request_uri": "/api/v1/items?seq=7", "server_protocol": "HTTP/1.1",
				"status": json.Number("404"), "body_bytes_sent": json.Number("153"), "http_referer": "https://shop.example/",
				"http_user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "@timestamp": "2026-12-02T10:59:58.000000000Z",
				"observed_timestamp": "2026-12-02T10:00:00.000000000Z"},
			[]string{"remote_ident", "time_local", "request"}},
		// What a TLS handshake on the plain port leaves: no method, URI or
		// protocol to split it into, so the request is kept whole.
		{"a request that does not split", `10.0.0.5 - - [02/Dec/2026:10:00:00 +0000] "\x16\x03\x01\x00\xA5\x01" 400 157 "-" "-"`,
			map[string]any{"request": "\x16\x03\x01\x00\uFFFD\x01", "status": json.Number("400")},
			[]string{"request_method", "request_uri", "server_protocol", "http_user_agent"}},
		{"nginx escapes quotes as \\x22", `::1 - - [02/Dec/2026:10:00:00 +0000] "GET /q?x=\x22y\x22 HTTP/1.1" 200 0 "-" "curl \x22quoted\x22 agent"`,
			map[string]any{"remote_addr": "::1", "request_uri": `/q?x="y"`, "http_user_agent": `curl "quoted" agent`, "body_bytes_sent": json.Number("0")},
			[]string{"remote_user", "http_referer"}},
		{"apache escapes quotes as \\\"", `10.0.0.2 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.0" 200 5 "-" "say \"hi\" \\ bye"`,
			map[string]any{"http_user_agent": `say "hi" \ bye`}, nil},
		{"apache writes white space as \\n and \\t", `10.0.0.2 - - [02/Dec/2026:10:00:00 +0000] "GET /a\tb HTTP/1.0" 200 5 "-" "two\nlines \x01"`,
			map[string]any{"request_uri": "/a\tb", "http_user_agent": "two\nlines \x01"}, nil},
		{"apache common, size -", `10.0.0.3 ident bob [02/Dec/2026:10:00:00 -0500] "POST /login HTTP/1.1" 302 -`,
			map[string]any{"remote_ident": "ident", "remote_user": "bob", "status": json.Number("302"), "@timestamp": "2026-12-02T15:00:00.000000000Z"},
			[]string{"body_bytes_sent", "http_user_agent"}},
		{"extra fields after combined", `10.0.0.4 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "a" 0.003 "upstream"`,
			map[string]any{"http_user_agent": "a"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := record(t, enc, p, tc.line)
			if !ok {
				t.Fatalf("did not parse: %s", tc.line)
			}
			if m["message"] != tc.line {
				t.Errorf("message = %q, want the line", m["message"])
			}
			for k, v := range tc.want {
				if m[k] != v {
					t.Errorf("%s = %#v, want %#v", k, m[k], v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := m[k]; ok {
					t.Errorf("%s present (%v), want absent", k, m[k])
				}
			}
		})
	}
}

// Ensure JSON written by Go's log/slog and by zerolog gives its top-level
// fields, the message from msg or message, the time from time, numbers as
// numbers and nested values as JSON; and that keys colliding with
// tailcar's own fields or a tag are renamed, never duplicated.
func TestParser_JSONFromRealLoggers(t *testing.T) {
	enc := mustEncoder(t, Tag{"_pod_name_", "web-7d9f"})
	p := mustParser(t, ParseJSON, "_pod_name_")

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("order placed seq=1", "order", 42, "amount", 12.5,
		"user", map[string]any{"id": 7, "tags": []string{"a", "b"}}, "file", "checkout.go", "_pod_name_", "spoofed")
	zl := zerolog.New(&buf).With().Timestamp().Logger()
	zl.Warn().Str("message2", "x").Int("seq", 2).
		Str("@timestamp", "not a time").Str("stream", "mine").Msg("disk almost full seq=2")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", buf.String())
	}
	slogRec, ok := record(t, enc, p, lines[0])
	if !ok {
		t.Fatalf("slog line did not parse: %s", lines[0])
	}
	for k, v := range map[string]any{
		"message": "order placed seq=1", "level": "INFO", "order": json.Number("42"), "amount": json.Number("12.5"),
		"file": "/var/log/app.log", "app_file": "checkout.go", "_pod_name_": "web-7d9f", "app__pod_name_": "spoofed",
	} {
		if slogRec[k] != v {
			t.Errorf("slog: %s = %#v, want %#v", k, slogRec[k], v)
		}
	}
	if user, _ := slogRec["user"].(map[string]any); user["id"] != json.Number("7") {
		t.Errorf("slog: nested user = %#v, want it as JSON", slogRec["user"])
	}
	if _, ok := slogRec["msg"]; ok {
		t.Error("slog: msg kept as a field besides message: the line's text twice")
	}
	if _, ok := slogRec["time"]; ok {
		t.Error("slog: time kept as a field although @timestamp holds it")
	}
	if slogRec["@timestamp"] == slogRec["observed_timestamp"] || slogRec["observed_timestamp"] != "2026-12-02T10:00:00.000000000Z" {
		t.Errorf("slog: @timestamp %v, observed %v: want the event's time and the read time", slogRec["@timestamp"], slogRec["observed_timestamp"])
	}

	zRec, ok := record(t, enc, p, lines[1])
	if !ok {
		t.Fatalf("zerolog line did not parse: %s", lines[1])
	}
	for k, v := range map[string]any{
		"message": "disk almost full seq=2", "level": "warn", "seq": json.Number("2"),
		"app_@timestamp": "not a time", "app_stream": "mine",
	} {
		if zRec[k] != v {
			t.Errorf("zerolog: %s = %#v, want %#v", k, zRec[k], v)
		}
	}
	// @timestamp (unreadable) comes first among the time keys; time,
	// zerolog's own, is read instead.
	if zRec["observed_timestamp"] == nil {
		t.Errorf("zerolog: the time field was not taken: %v", zRec)
	}
}

// Ensure logfmt and regex lines give their fields.
func TestParser_LogfmtAndRegex(t *testing.T) {
	enc := mustEncoder(t)
	m, ok := record(t, enc, mustParser(t, ParseLogfmt),
		`time=2026-12-02T10:00:01.5+01:00 level=info msg="user \"bob\" logged in" took=12ms cached seq=3`)
	if !ok {
		t.Fatal("logfmt line did not parse")
	}
	for k, v := range map[string]any{"message": `user "bob" logged in`, "level": "info", "took": "12ms", "cached": true,
		"seq": "3", "@timestamp": "2026-12-02T09:00:01.500000000Z"} {
		if m[k] != v {
			t.Errorf("logfmt: %s = %#v, want %#v", k, m[k], v)
		}
	}
	m, ok = record(t, enc, mustParser(t, ParseRegex), `ERROR 1796205600123 payment refused seq=4`)
	if !ok {
		t.Fatal("regex line did not parse")
	}
	for k, v := range map[string]any{"message": "payment refused seq=4", "level": "ERROR", "@timestamp": "2026-12-02T10:00:00.123000000Z"} {
		if m[k] != v {
			t.Errorf("regex: %s = %#v, want %#v", k, m[k], v)
		}
	}
}

// Ensure values quoted by real Go loggers come back as they were logged:
// slog's TextHandler and logrus quote with strconv.Quote, which escapes
// control characters (\x01), U+2028 (\u2028), invalid bytes (\xff) and
// more; go-logfmt writes \u00XX for control characters.
func TestParser_LogfmtFromRealLoggers(t *testing.T) {
	enc := mustEncoder(t)
	p := mustParser(t, ParseLogfmt)
	values := map[string]string{
		"quote":   `say "hi" \ back\slash`,
		"control": "bell\a tab\t nl\n cr\r ff\f vt\v bs\b nul\x00 esc\x1b del\x7f",
		"sep":     "line\u2028para\u2029end",
		"beyond":  "grin \U0001F600 and \u00e9",
		"invalid": "caf\xe9 \xff",
		"equals":  "a=b c",
		"empty":   "",
	}
	var buf bytes.Buffer
	attrs := []any{"seq", 1}
	for _, k := range []string{"quote", "control", "sep", "beyond", "invalid", "equals", "empty"} {
		attrs = append(attrs, k, values[k])
	}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("text seq=1 \"q\"", attrs...)
	line := strings.TrimSuffix(buf.String(), "\n")
	m, ok := record(t, enc, p, line)
	if !ok {
		t.Fatalf("slog's text line did not parse: %s", line)
	}
	if m["message"] != `text seq=1 "q"` || m["seq"] != "1" || m["level"] != "INFO" {
		t.Errorf("message %q, seq %#v, level %#v", m["message"], m["seq"], m["level"])
	}
	for k, v := range values {
		if want := strings.ToValidUTF8(v, "\uFFFD"); m[k] != want {
			t.Errorf("%s = %+q, want %+q (slog wrote %s)", k, m[k], want, line)
		}
	}

	// go-logfmt's escapes, and escapes no Go quoter writes: an unknown one
	// keeps its backslash, a surrogate or a rune beyond U+10FFFF is U+FFFD.
	m, ok = record(t, enc, p, `a="x\u0001y\u001fz" b="\q\d" c="\ud800\U00110000" d="\101\400" e="\x4" f="\/"`)
	if !ok {
		t.Fatal("line did not parse")
	}
	for k, v := range map[string]string{"a": "x\x01y\x1fz", "b": `\q\d`, "c": "\uFFFD\uFFFD", "d": `A\400`, "e": `\x4`, "f": "/"} {
		if m[k] != v {
			t.Errorf("%s = %+q, want %+q", k, m[k], v)
		}
	}
}

// Ensure hostile or broken lines are refused whole: the caller ships them
// as they are (and counts them); nothing panics, nothing is half parsed.
func TestParser_BadInputIsRefusedWhole(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	for _, tc := range []struct {
		format, name, line string
	}{
		{ParseJSON, "array", `[{"msg":"a"}]`},
		{ParseJSON, "truncated object", `{"msg":"a","level":"in`},
		{ParseJSON, "duplicate keys", `{"msg":"a","msg":"b"}`},
		{ParseJSON, "duplicate keys once unescaped", `{"msg":"a","m\u0073g":"b"}`},
		{ParseJSON, "empty key", `{"msg":"a","":1}`},
		{ParseJSON, "key of white space", `{"msg":"a"," \t":1}`},
		{ParseJSON, "key ending with a dot", `{"msg":"a","a.":1}`},
		{ParseJSON, "key starting with a dot", `{"msg":"a",".a":1}`},
		{ParseJSON, "key with two dots in a row", `{"msg":"a","a..b":1}`},
		{ParseJSON, "key with white space between dots", `{"msg":"a","a. .b":1}`},
		{ParseJSON, "key of a dot once unescaped", `{"msg":"a","\u002e":1}`},
		{ParseJSON, "empty key nested", `{"msg":"a","n":[{"ok":{"":1}}]}`},
		{ParseJSON, "nested key ending with a dot", `{"msg":"a","n":{"b.":1}}`},
		{ParseJSON, "duplicate keys nested", `{"msg":"a","n":{"x":1,"y":{"z":1},"x":2}}`},
		{ParseJSON, "duplicate keys in an object in an array", `{"msg":"a","n":[{"y":1},{"y":1,"y":2}]}`},
		{ParseJSON, "duplicate nested keys once unescaped", `{"msg":"a","n":{"k":1,"\u006b":2}}`},
		{ParseJSON, "duplicate keys in a big nested object", `{"msg":"a","n":{` + manyKeys(100, 0) + `,"k50":0}}`},
		{ParseJSON, "100,000 levels of nesting", `{"x":` + deep + `}`},
		{ParseJSON, "huge number", `{"msg":"a","n":1e999}`},
		{ParseJSON, "huge integer", `{"msg":"a","n":` + strings.Repeat("9", 400) + `}`},
		{ParseJSON, "invalid UTF-8", "{\"msg\":\"caf\xe9\"}"},
		{ParseJSON, "escaped lone high surrogate", `{"msg":"a\ud800"}`},
		{ParseJSON, "escaped lone low surrogate", `{"msg":"\udc00a"}`},
		{ParseJSON, "escaped surrogates in the wrong order", `{"msg":"\ude00\ud83d"}`},
		{ParseJSON, "escaped high surrogate before another escape", `{"msg":"\ud800\u0041"}`},
		{ParseJSON, "escaped lone surrogate in a key", `{"\ud800":"a"}`},
		{ParseJSON, "escaped lone surrogate nested", `{"msg":"a","x":{"y":["\udbff"]}}`},
		{ParseJSON, "control character", "{\"msg\":\"a\tb\"}"},
		{ParseJSON, "trailing garbage", `{"msg":"a"} x`},
		{ParseJSON, "bad literal", `{"ok":tru}`},
		{ParseJSON, "leading zero", `{"n":012}`},
		{ParseJSON, "key renamed onto another", `{"file":"a","app_file":"b"}`},
		{ParseNginx, "broken quote", `10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1 200 5 "-" "ua"`},
		{ParseNginx, "not nginx", `just some text`},
		{ParseNginx, "status not a number", `10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" abc 5`},
		{ParseRegex, "no match", `lowercase start`},
		{ParseLogfmt, "no pair", `just words here`},
		{ParseLogfmt, "key ending with a dot", `msg=hi a.=1`},
		{ParseLogfmt, "key of dots", `msg=hi ..=1`},
		{ParseLogfmt, "unterminated quote", `msg="never closed`},
		// Elasticsearch reads a.b as b inside a: a cannot also be a value.
		{ParseJSON, "a value and an object at one path", `{"msg":"m","a":1,"a.b":2}`},
		{ParseJSON, "an object and then a value at one path", `{"msg":"m","a.b":2,"a":"x"}`},
		{ParseJSON, "a nested value under a dotted path", `{"msg":"m","a":{"b":1},"a.b.c":2}`},
		{ParseJSON, "a value and an object at one nested path", `{"msg":"m","x":{"a":true,"a.b":2}}`},
		{ParseJSON, "an array of values and an object", `{"msg":"m","a":[1,2],"a.b":2}`},
		{ParseJSON, "an array of an object beside a value", `{"msg":"m","n":[1,{"b":2}]}`},
		{ParseJSON, "an array of an object beside a value nested", `{"msg":"m","x":{"n":[{"b":null},"v"]}}`},
		{ParseJSON, "an object in an array beside a value", `{"msg":"m","n":[1,[{"b":2}]]}`},
		{ParseJSON, "an array of objects holding a value under a path", `{"msg":"m","a":[{"b":1}],"a.b.c":2}`},
		{ParseJSON, "an empty object and a value", `{"msg":"m","a.b":{},"a":1}`},
		{ParseJSON, "a value and a nested empty object", `{"msg":"m","a.b":1,"a":{"b":{}}}`},
		{ParseJSON, "a dot once unescaped", `{"msg":"m","a":1,"a\u002eb":2}`},
		{ParseJSON, "a nested dot once unescaped", `{"msg":"m","x":{"a":1,"a\u002eb":2}}`},
		{ParseLogfmt, "a value and an object at one path", `msg=m a=1 a.b=2`},
		{ParseLogfmt, "a flag and an object at one path", `msg=m a a.b=2`},
		// Elasticsearch maps 20 levels: the record, and 19 objects in it.
		{ParseJSON, "a value 21 names deep", `{"msg":"m","x":` + nestedObjects(20, "1") + `}`},
		{ParseJSON, "an empty object 20 names deep", `{"msg":"m","x":` + nestedObjects(19, "{}") + `}`},
		{ParseJSON, "a value 21 names deep through dots", `{"msg":"m","x":{"a.b.c.d.e.f.g.h.i.j":{"k.l.m.n.o.p.q.r.s.t":1}}}`},
		{ParseJSON, "a dotted key of 21 names", `{"msg":"m","` + strings.Repeat("a.", 20) + `b":1}`},
		{ParseJSON, "objects deep inside arrays", `{"msg":"m","x":[` + nestedObjects(20, "1") + `]}`},
		{ParseLogfmt, "a key of 21 names", `msg=m ` + strings.Repeat("a.", 20) + `b=1`},
	} {
		t.Run(tc.format+"/"+tc.name, func(t *testing.T) {
			p := mustParser(t, tc.format)
			var f Fields
			if p.Parse([]byte(tc.line), &f) {
				t.Fatalf("parsed %q into %d fields; want it refused", tc.line[:min(len(tc.line), 60)], f.Len())
			}
			if f.Len() != 0 || f.message != messageLine {
				t.Fatal("a refused line left fields behind")
			}
			// Shipped as with TAILCAR_PARSE=none: the line is the message.
			m, _ := record(t, mustEncoder(t), p, tc.line)
			if got, _ := m["message"].(string); got != strings.ToValidUTF8(tc.line, "\uFFFD") {
				t.Fatalf("message = %.60q, want the line", got)
			}
		})
	}
}

// Ensure the names Elasticsearch takes are field names, and the ones it
// refuses a document for are not.
func TestIsFieldName(t *testing.T) {
	for _, name := range []string{"a", "a.b", "http.request.method", "a b", " a", "a .b", "@timestamp", "_pod_name_", "ü", "k\U0001F600"} {
		if !IsFieldName([]byte(name)) {
			t.Errorf("%q refused", name)
		}
	}
	for _, name := range []string{"", " ", "\t\n", ".", "..", ".a", "a.", "a..b", "a. .b", "a.\t", " .a"} {
		if IsFieldName([]byte(name)) {
			t.Errorf("%q taken", name)
		}
	}
}

// Ensure a dotted key is renamed when Elasticsearch would read it as an
// object named like one of our fields or tags (file.name is the field name
// of the object file), and a key is renamed when a dotted tag makes it
// an object (the tag team.name makes team one); keys that only share a
// start are left alone.
func TestParser_DottedKeysMeetingOurFields(t *testing.T) {
	tags := []Tag{{"_pod_name_", "web"}, {"team.name", "shop"}}
	p := mustParser(t, ParseJSON, "_pod_name_", "team.name")
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	// team and team.lead each in a line of their own: side by side, team
	// would be a value and an object at once, which Elasticsearch refuses
	// (TestParser_PathsThatAreValueAndObject).
	logger.Info("dots", "file.name", "a.go", "message.id", 7, "_pod_name_.x", "y",
		"team", "mine", "files.n", 2, "filename", "b.go", "http.method", "GET")
	logger.Info("dots", "team.lead", "ann")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	enc := mustEncoder(t, tags...)
	for i, want := range []map[string]any{{
		"app_file.name": "a.go", "app_message.id": json.Number("7"), "app__pod_name_.x": "y",
		"app_team": "mine", "files.n": json.Number("2"), "filename": "b.go", "http.method": "GET",
		"file": "/var/log/app.log", "team.name": "shop", "message": "dots",
	}, {
		"app_team.lead": "ann", "team.name": "shop", "message": "dots",
	}} {
		m, ok := record(t, enc, p, lines[i])
		if !ok {
			t.Fatalf("line refused: %s", lines[i])
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %#v, want %#v", k, m[k], v)
			}
		}
		for _, k := range []string{"file.name", "message.id", "_pod_name_.x", "team", "team.lead"} {
			if _, ok := m[k]; ok {
				t.Errorf("%s kept under its own name: %v", k, m)
			}
		}
	}
}

// Ensure dotted keys that Elasticsearch merges into one object keep their
// fields: ECS loggers write "log.level" beside an object "log", and a null
// maps as nothing. (The paths it refuses are in
// TestParser_BadInputIsRefusedWhole.)
func TestParser_DottedPathsThatMerge(t *testing.T) {
	enc := mustEncoder(t)
	for _, tc := range []struct {
		format, line string
		want         map[string]any
	}{
		{ParseJSON, `{"@timestamp":"2026-12-05T10:00:00.000Z","log.level":"info","message":"started","ecs":{"version":"1.6.0"},"log":{"logger":"app","origin":{"file":{"line":8,"name":"main.py"},"function":"main"}}}`,
			map[string]any{"log.level": "info", "message": "started"}},
		{ParseJSON, `{"msg":"m","a":{"x":1},"a.b":2}`, map[string]any{"a.b": json.Number("2")}},
		{ParseJSON, `{"msg":"m","a":null,"a.b":2}`, map[string]any{"a.b": json.Number("2"), "a": nil}},
		{ParseJSON, `{"msg":"m","a.b":1,"a.c":{"d":2}}`, map[string]any{"a.b": json.Number("1")}},
		{ParseJSON, `{"msg":"m","msg.id":7}`, map[string]any{"msg.id": json.Number("7"), "message": "m"}},
		{ParseJSON, `{"msg":"m","ab":1,"a.b":2,"a-b":3}`, map[string]any{"ab": json.Number("1"), "a.b": json.Number("2")}},
		{ParseJSON, `{"msg":"m","n":[[1],[2,null],3],"o":[{"a":1},[{"b":2}],null]}`, map[string]any{"message": "m"}},
		// As deep as Elasticsearch maps, and arrays, which add no depth.
		{ParseJSON, `{"msg":"m","x":` + nestedObjects(19, "1") + `,"y":` + nestedObjects(18, "{}") + `}`, map[string]any{"message": "m"}},
		{ParseJSON, `{"msg":"m","` + strings.Repeat("a.", 19) + `b":1}`, map[string]any{strings.Repeat("a.", 19) + "b": json.Number("1")}},
		{ParseJSON, `{"msg":"m","x":` + strings.Repeat("[", 40) + `{"a":1}` + strings.Repeat("]", 40) + `}`, map[string]any{"message": "m"}},
		{ParseLogfmt, `msg=m a.b=1 a.c=2 ab=3`, map[string]any{"a.b": "1", "ab": "3"}},
	} {
		m, ok := record(t, enc, mustParser(t, tc.format), tc.line)
		if !ok {
			t.Errorf("refused: %s", tc.line)
			continue
		}
		for k, v := range tc.want {
			if got, present := m[k]; got != v || !present {
				t.Errorf("%s: %s = %#v (present %v), want %#v", tc.line, k, got, present, v)
			}
		}
	}
}

// Ensure the path check's work grows with the line, not with its depth
// times its values: a hostile line of 18 nested 40,000-byte keys over
// 20,000 values, with a dotted key to have its paths checked, noted every
// prefix again for each value (360,000 hashes over 14 GB of paths) before
// paths were hashed on from their parent's.
func TestParser_DeepPathsCostTheirLength(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"msg":"m","x.y":1,`)
	for i := range 18 {
		fmt.Fprintf(&b, `"k%d%s":{`, i, strings.Repeat("x", 40000))
	}
	for i := range 20000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"a%d":1`, i)
	}
	b.WriteString(strings.Repeat("}", 19))
	line := []byte(b.String())
	p := mustParser(t, ParseJSON)
	var f Fields
	if !p.Parse(line, &f) {
		t.Fatal("line refused; its paths neither clash nor nest too deep")
	}
	if noted := len(p.paths.values) + len(p.paths.objects); noted > 20000+18+10 {
		t.Fatalf("%d paths noted for 20,000 values under 18 objects", noted)
	}
}

// Ensure a parsed field named as one of Elasticsearch's metadata fields
// is renamed, at the top only: Elasticsearch refuses a document with an
// _id at its top, which MongoDB-backed apps log, and takes one nested.
func TestParser_ElasticsearchMetadataFieldsAreRenamed(t *testing.T) {
	enc := mustEncoder(t)
	for _, tc := range []struct {
		format, line string
		want         map[string]any
		gone         []string
	}{
		{ParseJSON, `{"msg":"saved","_id":"6570f1","_index":"orders","_source.x":1,"user":{"_id":"u7"},"_doc_count":3}`,
			map[string]any{"app__id": "6570f1", "app__index": "orders", "app__source.x": json.Number("1"), "_doc_count": json.Number("3")},
			[]string{"_id", "_index", "_source.x"}},
		{ParseLogfmt, `msg=saved _id=6570f1 _routing=eu`, map[string]any{"app__id": "6570f1", "app__routing": "eu"}, []string{"_id", "_routing"}},
	} {
		m, ok := record(t, enc, mustParser(t, tc.format), tc.line)
		if !ok {
			t.Fatalf("refused: %s", tc.line)
		}
		for k, v := range tc.want {
			if m[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", tc.line, k, m[k], v)
			}
		}
		for _, k := range tc.gone {
			if _, ok := m[k]; ok {
				t.Errorf("%s: %s kept under its own name", tc.line, k)
			}
		}
		if user, _ := m["user"].(map[string]any); tc.format == ParseJSON && user["_id"] != "u7" {
			t.Errorf("nested _id = %#v, want it kept", user["_id"])
		}
	}
}

// nestedObjects returns n objects, each the only value of the one before,
// with inner innermost: {"n1":{"n2":…{"nn":inner}…}}.
func nestedObjects(n int, inner string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"n%d":`, i+1)
	}
	b.WriteString(inner)
	b.WriteString(strings.Repeat("}", n))
	return b.String()
}

// manyKeys returns n members "k0":v … "k<n-1>":v for an object.
func manyKeys(n, v int) string {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf(`"k%d":%d`, i, v)
	}
	return strings.Join(members, ",")
}

// Ensure a key may repeat across objects, only not within one: in
// siblings, in an object and the one it holds, in an array's objects,
// and in big objects (the map a scanner uses past 32 keys is emptied for
// the next).
func TestParser_JSONNestedKeysPerObject(t *testing.T) {
	p := mustParser(t, ParseJSON)
	line := `{"msg":"a","x":{"x":{"x":1}},"p":{"c":{"k":1},"k":2},"b":{"x":2},"c":[{"x":1},{"x":2,"y":[{"x":3}]}],` +
		`"big1":{` + manyKeys(100, 1) + `},"big2":{` + manyKeys(100, 2) + `},"big3":[{` + manyKeys(40, 3) + `,"in":{` + manyKeys(40, 4) + `}},{` + manyKeys(40, 5) + `}]}`
	for range 2 { // and again with the scanner's buffers in use
		m, ok := record(t, mustEncoder(t), p, line)
		if !ok {
			t.Fatal("a line with keys repeated only across objects was refused")
		}
		if big2, _ := m["big2"].(map[string]any); len(big2) != 100 || big2["k99"] != json.Number("2") {
			t.Fatalf("big2 = %v", m["big2"])
		}
	}
}

// Ensure what a line with a huge nested object made the scanner keep is
// let go at the next line (Go's maps do not shrink), while what small
// objects use is kept for the next lines.
func TestJSONScanner_LetsGoOfHugeObjects(t *testing.T) {
	p := mustParser(t, ParseJSON)
	var f Fields
	if !p.Parse([]byte(`{"msg":"a","n":{"x":{`+manyKeys(5000, 1)+`}}}`), &f) {
		t.Fatal("line with a big nested object refused")
	}
	if len(p.json.many[1]) != 5000 || cap(p.json.keys) < 5000 {
		t.Fatalf("the object of 5,000 keys was not checked through the map: %d keys there", len(p.json.many[1]))
	}
	if !p.Parse([]byte(`{"msg":"b","n":{`+manyKeys(100, 1)+`}}`), &f) {
		t.Fatal("line refused")
	}
	if p.json.many[1] != nil || cap(p.json.keys) > manyKept {
		t.Errorf("after the next line, %d keys still held in a map, %d in the list", len(p.json.many[1]), cap(p.json.keys))
	}
	if len(p.json.many[0]) != 100 {
		t.Errorf("the 100 keys' map: %d keys", len(p.json.many[0]))
	}
	if !p.Parse([]byte(`{"msg":"c","n":{`+manyKeys(100, 2)+`}}`), &f) || p.json.many[0] == nil {
		t.Error("a small map was not kept for the next line")
	}
}

// Ensure escaped surrogate pairs, which JSON encoders of UTF-16 languages
// write for characters beyond the BMP, parse, in either hex case, and
// come out as the characters they stand for.
func TestParser_JSONSurrogatePairs(t *testing.T) {
	p := mustParser(t, ParseJSON)
	m, ok := record(t, mustEncoder(t), p, `{"msg":"grin \ud83d\ude00","k\uD83D\uDE00":["\uDBFF\uDFFF"]}`)
	if !ok {
		t.Fatal("a line with escaped surrogate pairs was refused")
	}
	if m["message"] != "grin \U0001F600" {
		t.Errorf("message = %q, want %q", m["message"], "grin \U0001F600")
	}
	if got, _ := m["k\U0001F600"].([]any); len(got) != 1 || got[0] != "\U0010FFFF" {
		t.Errorf("k\U0001F600 = %#v, want [\"\U0010FFFF\"]", m["k\U0001F600"])
	}
}

// Ensure a time field that is missing, or out of the years 1–9999, leaves
// the read time in @timestamp, and is said so (the caller counts it).
func TestParser_TimeOutOfRangeFallsBack(t *testing.T) {
	p := mustParser(t, ParseJSON)
	for _, line := range []string{
		`{"msg":"a","time":"0000-01-01T00:00:00Z"}`,
		`{"msg":"a","time":"10000-01-01T00:00:00Z"}`,
		`{"msg":"a","time":"2026-02-30T00:00:00Z"}`,
		`{"msg":"a","ts":-5}`,
		`{"msg":"a"}`,
	} {
		var f Fields
		if !p.Parse([]byte(line), &f) {
			t.Fatalf("%s: not parsed", line)
		}
		if !f.Time.IsZero() {
			t.Errorf("%s: event time %v, want none", line, f.Time)
		}
		if wantFound := strings.Contains(line, `"t`); f.TimeFound != wantFound {
			t.Errorf("%s: TimeFound %v, want %v", line, f.TimeFound, wantFound)
		}
	}
}

// Ensure the remembered last time text gives a time only for that very
// text: an empty time before any was read, then the same, another and an
// empty one, in that order, each read as it would be alone; a time that
// is not read stays a field of the record.
func TestParser_RememberedTime(t *testing.T) {
	p := mustParser(t, ParseJSON)
	want := map[string]time.Time{
		`{"msg":"a","time":""}`:                      {},
		`{"msg":"b","time":"2026-12-03T10:00:00Z"}`:  time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC),
		`{"msg":"c","time":"2026-12-03T10:00:00Z"}`:  time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC),
		`{"msg":"d","time":"2026-12-03T10:00:01Z"}`:  time.Date(2026, 12, 3, 10, 0, 1, 0, time.UTC),
		`{"msg":"e","time":"2026-12-03T10:00:0"}`:    {},
		`{"msg":"f","time":"2026-12-03T10:00:01Z "}`: {},
	}
	for _, line := range []string{`{"msg":"a","time":""}`, `{"msg":"b","time":"2026-12-03T10:00:00Z"}`,
		`{"msg":"c","time":"2026-12-03T10:00:00Z"}`, `{"msg":"d","time":"2026-12-03T10:00:01Z"}`,
		`{"msg":"e","time":"2026-12-03T10:00:0"}`, `{"msg":"a","time":""}`, `{"msg":"f","time":"2026-12-03T10:00:01Z "}`} {
		var f Fields
		if !p.Parse([]byte(line), &f) {
			t.Fatalf("%s: not parsed", line)
		}
		if !f.Time.Equal(want[line]) {
			t.Errorf("%s: event time %v, want %v", line, f.Time, want[line])
		}
		if kept := f.Len() == 1; kept != f.Time.IsZero() {
			t.Errorf("%s: %d fields; a time that is not read must stay a field, one that is read must not", line, f.Len())
		}
	}
}

func TestTimeFormat_Auto(t *testing.T) {
	want := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		in     string
		number bool
		want   time.Time
	}{
		{"2026-12-02T10:00:00.123456789Z", false, want},
		{"2026-12-02T11:00:00.123456789+01:00", false, want},
		{"2026-12-02T10:00:00.123456789+0000", false, want},
		{"2026-12-02 10:00:00.123456789Z", false, want},
		{"2026-12-02T10:00:00Z", false, want.Truncate(time.Second)},
		{"1796205600.123456789", true, want},
		{"1796205600", true, want.Truncate(time.Second)},
		{"1796205600123", true, want.Truncate(time.Millisecond)},
		{"1796205600123456", true, want.Truncate(time.Microsecond)},
		{"1796205600123456789", true, want},
		{"1796205600", false, want.Truncate(time.Second)},
		{"02/Dec/2026:11:00:00 +0100", false, want.Truncate(time.Second)},
	} {
		got, ok := TimeFormat{}.Parse([]byte(tc.in), tc.number)
		if !ok || !got.Equal(tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "0", "2026-13-01T00:00:00Z", "02/Foo/2026:11:00:00 +0100", "1.5e9"} {
		if got, ok := (TimeFormat{}).Parse([]byte(bad), true); ok {
			t.Errorf("%q read as %v", bad, got)
		}
	}
	custom, err := NewTimeFormat("2006-01-02 15:04:05.000")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := custom.Parse([]byte("2026-12-02 10:00:00.123"), false); !ok || !got.Equal(want.Truncate(time.Millisecond)) {
		t.Errorf("custom layout: %v %v", got, ok)
	}
}

// Ensure a layout must read a date, and one without a year (syslog's)
// reads the year that puts the time nearest before now.
func TestTimeFormat_Layouts(t *testing.T) {
	for _, layout := range []string{"garbage", "%Y-%m-%d %H:%M:%S", "15:04:05", "Jan 15:04:05"} {
		if _, err := NewTimeFormat(layout); err == nil {
			t.Errorf("layout %q accepted; want it refused, as it reads no date", layout)
		}
	}
	for _, tc := range []struct{ layout, in, want string }{
		{"2006-01-02", "2026-12-04", "2026-12-04T00:00:00Z"},
		{"02/Jan/06 15:04", "04/Dec/26 10:30", "2026-12-04T10:30:00Z"},
		{time.RFC1123Z, "Fri, 04 Dec 2026 10:30:00 +0100", "2026-12-04T09:30:00Z"},
	} {
		tf, err := NewTimeFormat(tc.layout)
		if err != nil {
			t.Fatalf("%q: %v", tc.layout, err)
		}
		if got, ok := tf.Parse([]byte(tc.in), false); !ok || got.Format(time.RFC3339) != tc.want {
			t.Errorf("%q in %q: %v %v, want %s", tc.in, tc.layout, got, ok, tc.want)
		}
	}

	syslog, err := NewTimeFormat(time.Stamp) // Jan _2 15:04:05
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	in := now.Add(-time.Hour).Format(time.Stamp)
	if got, ok := syslog.Parse([]byte(in), false); !ok || !got.Equal(now.Add(-time.Hour).Truncate(time.Second)) {
		t.Errorf("syslog time %q an hour ago: %v %v", in, got, ok)
	}
	for _, tc := range []struct{ in, now, want string }{
		{"Dec  4 10:30:00", "2026-12-04T11:00:00Z", "2026-12-04T10:30:00Z"},
		{"Dec 31 23:59:59", "2027-01-01T00:00:05Z", "2026-12-31T23:59:59Z"}, // across new year
		{"Dec  5 00:30:00", "2026-12-04T23:00:00Z", "2026-12-05T00:30:00Z"}, // a clock a little ahead
		{"Mar  1 00:00:00", "2026-12-04T11:00:00Z", "2026-03-01T00:00:00Z"}, // a backlog of months
	} {
		read, _ := time.Parse(time.Stamp, tc.in)
		now, _ := time.Parse(time.RFC3339, tc.now)
		if got := withYear(read, now).Format(time.RFC3339); got != tc.want {
			t.Errorf("%q read at %s: %s, want %s", tc.in, tc.now, got, tc.want)
		}
	}
}

// Ensure the filters keep what TAILCAR_INCLUDE matches and drop what
// TAILCAR_DROP matches.
func TestFilter_Keep(t *testing.T) {
	f := Filter{Include: regexp.MustCompile(`GET|POST`), Drop: regexp.MustCompile(`/healthz`)}
	for line, want := range map[string]bool{"GET /": true, "POST /x": true, "GET /healthz": false, "PUT /": false} {
		if got := f.Keep([]byte(line)); got != want {
			t.Errorf("Keep(%q) = %v, want %v", line, got, want)
		}
	}
	if !(Filter{}).Keep([]byte("anything")) {
		t.Error("an empty filter dropped a line")
	}
}

// Ensure parsing and encoding allocate nothing per line on the json and
// nginx paths, nor filtering.
func TestParser_NoAllocationsPerLine(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (regexp's) allocate; make test runs this without it")
	}
	enc := mustEncoder(t, Tag{"_pod_name_", "web"})
	jsonLine := []byte(`{"time":"2026-12-02T10:00:00.123456789Z","level":"INFO","msg":"order placed","order":42,"user":{"id":7},"path":"/api/v1/cart","took_ms":12.5}`)
	nginxLine := []byte(`10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET /api/v1/items?seq=70 HTTP/1.1" 200 153 "-" "Mozilla/5.0 \x22x\x22"`)
	// ECS's dotted keys beside objects: its paths are checked (fieldPaths).
	ecsLine := []byte(`{"@timestamp":"2026-12-05T10:00:00.000Z","log.level":"info","message":"started seq=70 ","ecs":{"version":"1.6.0"},"log":{"logger":"app","origin":{"file":{"line":8,"name":"main.py"}}},"tags":[{"a":1},{"b.c":[1,2]}]}`)
	filter := Filter{Drop: regexp.MustCompile(`seq=\d*[1-9] `)}
	for _, tc := range []struct {
		name string
		p    *Parser
		line []byte
	}{{"json", mustParser(t, ParseJSON), jsonLine}, {"nginx", mustParser(t, ParseNginx), nginxLine}, {"json with dotted keys", mustParser(t, ParseJSON), ecsLine}} {
		for _, e := range []struct {
			name string
			enc  interface {
				AppendRecord([]byte, Record) []byte
			}
		}{{"json record", enc}, {"otlp record", NewOTLPEncoder()}} {
			var f Fields
			var buf []byte
			parsed := 0
			allocs := testing.AllocsPerRun(1000, func() {
				if !filter.Keep(tc.line) {
					return
				}
				if tc.p.Parse(tc.line, &f) {
					parsed++
				}
				buf = e.enc.AppendRecord(buf[:0], Record{Read: parseReadAt, Event: f.Time, Path: "/var/log/app.log", Message: tc.line, Fields: &f})
			})
			if parsed != 1001 || f.Time.IsZero() {
				t.Fatalf("%s: parsed %d of 1001 lines, time %v: the measure proves nothing", tc.name, parsed, f.Time)
			}
			if allocs != 0 {
				t.Errorf("%s to %s: %.1f allocations per line, want 0", tc.name, e.name, allocs)
			}
		}
	}
}

func BenchmarkParser(b *testing.B) {
	enc := mustEncoder(b, Tag{"_pod_name_", "web"})
	for _, tc := range []struct {
		name string
		p    *Parser
		line string
	}{
		{"json", mustParser(b, ParseJSON), `{"time":"2026-12-02T10:00:00.123456789Z","level":"INFO","msg":"order placed","order":42,"user":{"id":7},"path":"/api/v1/cart","took_ms":12.5}`},
		{"nginx", mustParser(b, ParseNginx), `10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET /api/v1/items?seq=7 HTTP/1.1" 200 153 "-" "Mozilla/5.0 (X11; Linux x86_64)"`},
		// ECS's dotted keys beside objects: the paths are checked (fieldPaths).
		{"json-dotted", mustParser(b, ParseJSON), `{"@timestamp":"2026-12-02T10:00:00.123Z","log.level":"info","message":"order placed","ecs":{"version":"1.6.0"},"log":{"logger":"shop","origin":{"file":{"line":8,"name":"main.py"}}},"order.id":42}`},
		{"logfmt", mustParser(b, ParseLogfmt), `time=2026-12-02T10:00:01.5Z level=info msg="user logged in" took=12ms seq=3`},
		{"regex", mustParser(b, ParseRegex), `ERROR 1796205600123 payment refused seq=4`},
	} {
		for _, e := range []struct {
			suffix string
			enc    interface {
				AppendRecord([]byte, Record) []byte
			}
		}{{"", enc}, {"-otlp", NewOTLPEncoder()}} {
			b.Run(tc.name+e.suffix, func(b *testing.B) {
				var f Fields
				var buf []byte
				line := []byte(tc.line)
				b.SetBytes(int64(len(line)))
				b.ReportAllocs()
				for b.Loop() {
					tc.p.Parse(line, &f)
					buf = e.enc.AppendRecord(buf[:0], Record{Read: parseReadAt, Event: f.Time, Path: "/var/log/app.log", Message: line, Fields: &f})
				}
			})
		}
	}
}

// BenchmarkParserDistinctTimes is BenchmarkParser/json on W1-json's lines,
// whose seconds all differ from one line to the next: the remembered time
// text and the encoder's per-second timestamp miss on every line, so the
// time is read and written in full each time.
func BenchmarkParserDistinctTimes(b *testing.B) {
	enc := mustEncoder(b, Tag{"_pod_name_", "web"})
	p := mustParser(b, ParseJSON)
	lines := make([][]byte, 1000)
	for n := range lines {
		lines[n] = fmt.Appendf(nil, `{"time":"2026-11-25T10:00:%02d.%09dZ","level":"INFO","msg":"order placed seq=%d","order_id":"ord-%d","user":{"id":%d,"plan":"pro"},"path":"/api/v1/cart/items","took_ms":%d.5,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`,
			n%60, n, n, n, n%1000, n%300)
	}
	var f Fields
	var buf []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		line := lines[i%len(lines)]
		i++
		p.Parse(line, &f)
		buf = enc.AppendRecord(buf[:0], Record{Read: parseReadAt, Event: f.Time, Path: "/var/log/app.log", Message: line, Fields: &f})
	}
}

func FuzzParser(f *testing.F) {
	f.Add(`{"msg":"a","n":[1,{"b":null}],"t":true}`)
	f.Add(`10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"`)
	f.Add(`a=1 b="x y" c`)
	f.Add(`{"msg":"\ud83d\ude00 \ud800"}`)
	f.Add(`{"msg":"a","n":[{"x":1,"x":2}]}`)
	f.Add(`{"msg":"a","n":{"a..b":1},"":2}`)
	f.Add(`msg=a .=1`)
	f.Add(`{"msg":"m","a":{"b":[1,{}]},"a.b.c":{"d.e":null},"x.y":2}`)
	f.Add(`msg=m a.b=1 a b.c`)
	enc, _ := NewEncoder([]Tag{{"_pod_name_", "w"}})
	otlp := NewOTLPEncoder()
	parsers := []*Parser{mustParser(f, ParseJSON, "_pod_name_"), mustParser(f, ParseNginx), mustParser(f, ParseLogfmt), mustParser(f, ParseRegex)}
	f.Fuzz(func(t *testing.T, line string) {
		for _, p := range parsers {
			var fl Fields
			r := Record{Read: parseReadAt, Path: "p", Message: []byte(line)}
			if p.Parse([]byte(line), &fl) {
				r.Fields, r.Event = &fl, fl.Time
			}
			out := enc.AppendRecord(nil, r)
			if !json.Valid(out) {
				t.Fatalf("invalid JSON for %q: %s", line, out)
			}
			requireNoDuplicateKeys(t, out)
			requireNoPathClash(t, out)
			requirePairedSurrogates(t, out)
			requireUnparsedForm(t, enc, r, out)
			var lr logspb.LogRecord
			if err := proto.Unmarshal(otlp.AppendRecord(nil, r), &lr); err != nil {
				t.Fatalf("invalid LogRecord for %q: %v", line, err)
			}
		}
	})
}

// requirePairedSurrogates fails when JSON text holds an escaped surrogate
// that is not half of a pair, which strict parsers refuse (json.Valid
// does not).
func requirePairedSurrogates(t *testing.T, out []byte) {
	t.Helper()
	for i := 0; i+1 < len(out); i++ {
		if out[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if out[i] != 'u' {
			continue
		}
		r, ok := parseHex(out[i+1:], 4)
		switch {
		case !ok:
			t.Fatalf("bad \\u escape in %s", out)
		case r >= 0xDC00 && r <= 0xDFFF:
			t.Fatalf("lone low surrogate %U in %s", r, out)
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, ok := parseHex(out[min(i+7, len(out)):], 4); !ok || i+6 >= len(out) || out[i+5] != '\\' || out[i+6] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
				t.Fatalf("lone high surrogate %U in %s", r, out)
			}
			i += 6
		}
		i += 4
	}
}

// BenchmarkJSONWithEncodingJSON is the standard library's way to take a
// line's top-level fields, for the README's design decision: decoding into
// map[string]json.RawMessage (duplicate keys silently kept once, nesting
// unbounded up to its own limit) before the same record is encoded.
func BenchmarkJSONWithEncodingJSON(b *testing.B) {
	enc := mustEncoder(b, Tag{"_pod_name_", "web"})
	line := []byte(`{"time":"2026-12-02T10:00:00.123456789Z","level":"INFO","msg":"order placed","order":42,"user":{"id":7},"path":"/api/v1/cart","took_ms":12.5}`)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			b.Fatal(err)
		}
		buf = enc.AppendRecord(buf[:0], Record{Read: parseReadAt, Path: "/var/log/app.log", Message: line})
		for k, v := range m {
			buf = append(buf, ',')
			buf = AppendString(buf, []byte(k))
			buf = append(buf, ':')
			buf = append(buf, v...)
		}
	}
}

// Ensure ParseRFC3339 reads what time.Parse reads, for texts across the
// years 1–9999 with any offset and fraction, finer than nanoseconds too
// (RFC 3339 sets no limit; both keep the first nine digits).
func TestParseRFC3339_MatchesTimeParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		year, month := 1+rng.IntN(9999), 1+rng.IntN(12)
		day := 1 + rng.IntN(daysIn(time.Month(month), year))
		text := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d", year, month, day, rng.IntN(24), rng.IntN(60), rng.IntN(60))
		if digits := rng.IntN(13); digits > 0 {
			text += "." + fmt.Sprintf("%09d%03d", rng.IntN(1e9), rng.IntN(1e3))[:digits]
			if rng.IntN(1000) == 0 {
				text += strings.Repeat("7", 1+rng.IntN(100))
			}
		}
		if rng.IntN(3) == 0 {
			text += "Z"
		} else {
			sign := "+"
			if rng.IntN(2) == 0 {
				sign = "-"
			}
			text += fmt.Sprintf("%s%02d:%02d", sign, rng.IntN(24), rng.IntN(60))
		}
		want, err := time.Parse(time.RFC3339Nano, text)
		got, ok := ParseRFC3339([]byte(text))
		if err != nil || !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("ParseRFC3339(%s) = %v, %v; time.Parse: %v, %v", text, got, ok, want.UTC(), err)
		}
	}
}

// Ensure a field that is a piece of the line, written without a second
// scan when the line needed no escape but its quotes, comes out byte for
// byte as AppendString writes it, for lines with and without bytes to
// escape in every place, and that a record whose message is another line
// than the one parsed gets no such shortcut.
func TestFormLine_WrittenAsAppendStringWould(t *testing.T) {
	enc := mustEncoder(t)
	regex, err := NewParser(ParserConfig{Format: ParseRegex,
		Regex: regexp.MustCompile(`^(?P<level>\S+) (?P<who>.*?) (?P<what>.*)$`)})
	if err != nil {
		t.Fatal(err)
	}
	logfmt, err := NewParser(ParserConfig{Format: ParseLogfmt}) // no message key: the message is the line
	if err != nil {
		t.Fatal(err)
	}
	parsers := map[string]*Parser{"nginx": mustParser(t, ParseNginx), "regex": regex, "logfmt": logfmt}
	// Pieces a field may hold: plain text, nginx's and Apache's escapes,
	// valid UTF-8, U+2028, invalid UTF-8, control bytes, DEL. The first
	// ones need no escape but the quote's; half the lines are made of
	// those alone.
	pieces := []string{"GET", "/a?b=1", "Mozilla/5.0 (X11)", "é", "日本", "-", `"`, "ok",
		"\\\"", "\\x22", "\\\\", "\u2028", "\xff", "\xe2\x80", "\x01", "\t", "\x7f"}
	const clean = 8
	rng := rand.New(rand.NewPCG(1, 2))
	var pool []string
	piece := func() string {
		var s string
		for range 1 + rng.IntN(4) {
			s += pool[rng.IntN(len(pool))]
		}
		return s
	}
	lines := map[string]func() string{
		"nginx": func() string {
			return fmt.Sprintf(`10.0.0.%d - %s [02/Dec/2026:10:00:00 +0000] "%s %s HTTP/1.1" 200 %d "%s" "%s"`,
				rng.IntN(256), piece(), piece(), piece(), rng.IntN(1000), piece(), piece())
		},
		"regex":  func() string { return piece() + " " + piece() + " " + piece() },
		"logfmt": func() string { return "level=" + piece() + " msg=x who=" + piece() + ` q="` + piece() + `"` },
	}
	for name, p := range parsers {
		var f Fields
		fast, slow := 0, 0
		for i := range 20000 {
			pool = pieces[:clean]
			if i%2 == 0 {
				pool = pieces
			}
			line := []byte(lines[name]())
			if !p.Parse(line, &f) {
				continue
			}
			got := enc.AppendRecord(nil, Record{Read: parseReadAt, Path: "/a", Message: line, Fields: &f})
			if !json.Valid(got) {
				t.Fatalf("%s: %q gave invalid JSON: %s", name, line, got)
			}
			if f.message == messageLine && len(AppendString(nil, line)) == len(line)+2+bytes.Count(line, []byte{'"'}) {
				fast++
			} else {
				slow++
			}
			// The same record with every piece of the line scanned again.
			for i := range f.members {
				if f.members[i].form == formLine {
					f.members[i].form = formText
				}
			}
			if want := enc.AppendRecord(nil, Record{Read: parseReadAt, Path: "/a", Message: line, Fields: &f}); !bytes.Equal(got, want) {
				t.Fatalf("%s: %q\n got %s\nwant %s", name, line, got, want)
			}
		}
		if fast < 100 || slow < 100 {
			t.Fatalf("%s: %d lines needing no escape and %d others: the test proves little", name, fast, slow)
		}
	}

	// Fields parsed from a line that needs escapes, in a record whose
	// message is another line that needs none.
	var f Fields
	line := []byte("10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] \"GET /\x01 HTTP/1.1\" 200 1 \"-\" \"a\"")
	if !parsers["nginx"].Parse(line, &f) {
		t.Fatal("the line did not parse")
	}
	got := enc.AppendRecord(nil, Record{Read: parseReadAt, Path: "/a", Message: []byte("plain"), Fields: &f})
	if !json.Valid(got) || !bytes.Contains(got, []byte(`"request_uri":"/\u0001"`)) {
		t.Errorf("fields of another line were written unscanned: %s", got)
	}
}

// Ensure a Fields used again keeps nothing of the line before: its members
// are reused and written in place (Fields.add), and an nginx member's
// ready-made JSON name must not name a JSON line's field in the same slot.
func TestFields_ReusedMembersKeepNothingOfTheLineBefore(t *testing.T) {
	enc := mustEncoder(t)
	var f Fields
	nginxLine := `10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" "ua"`
	if !mustParser(t, ParseNginx).Parse([]byte(nginxLine), &f) {
		t.Fatal("the nginx line did not parse")
	}
	jsonLine := `{"msg":"m","a":1,"b":"x","c":true,"d":null,"e":2,"g":"y","h":3,"i":4}`
	if !mustParser(t, ParseJSON).Parse([]byte(jsonLine), &f) {
		t.Fatal("the JSON line did not parse")
	}
	out := enc.AppendRecord(nil, Record{Read: parseReadAt, Path: "/var/log/app.log", Message: []byte(jsonLine), Fields: &f})
	requireNoDuplicateKeys(t, out)
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("record is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"a", "b", "c", "d", "e", "g", "h", "i"} {
		if _, ok := got[k]; !ok {
			t.Errorf("field %q missing from the JSON line's record: %s", k, out)
		}
	}
	for _, k := range []string{"remote_addr", "request_method", "request_uri", "status", "http_user_agent"} {
		if _, ok := got[k]; ok {
			t.Errorf("the nginx line's field %q came back in the JSON line's record: %s", k, out)
		}
	}
}
