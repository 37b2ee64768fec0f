package enrich

import (
	"bytes"
	"testing"
	"time"
)

// requireUnparsedForm fails unless AppendRecordSeed encodes r as
// AppendRecord does (want), and the unparsed form built from its seed is
// the record TAILCAR_PARSE=none gives for the same line, with the same
// event time.
func requireUnparsedForm(t *testing.T, enc *Encoder, r Record, want []byte) {
	t.Helper()
	prefix := []byte("earlier records ")
	rec, head := enc.AppendRecordSeed(append([]byte(nil), prefix...), []byte("earlier seeds"), r)
	seed := append(head, r.Message...)
	if !bytes.Equal(rec[len(prefix):], want) {
		t.Fatalf("AppendRecordSeed encodes\n%s\nwhere AppendRecord gives\n%s", rec[len(prefix):], want)
	}
	plain := r
	plain.Fields = nil
	wantForm := enc.AppendRecord(nil, plain)
	form, ok := AppendUnparsed([]byte("x"), rec[len(prefix):], seed[len("earlier seeds"):])
	if !ok || !bytes.Equal(form[1:], wantForm) {
		t.Fatalf("unparsed form of %q (ok %v):\n%s\nwant\n%s", r.Message, ok, form[1:], wantForm)
	}
}

// Ensure the unparsed form of a parsed record is the record the line
// gives unparsed, keeping the event's time, for every parser and message
// case: a parsed message (json), none (json without one), the line
// (nginx), a truncated container record with a stream and path tags, and
// lines that need escaping.
func TestAppendUnparsed_IsTheRecordUnparsed(t *testing.T) {
	enc, err := NewEncoder([]Tag{{"_pod_name_", "web"}, {"_namespace_", "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		format, line string
		r            Record
	}{
		{ParseJSON, `{"time":"2026-12-05T06:00:00Z","level":"INFO","msg":"order \"42\" placed","status":200}`, Record{}},
		{ParseJSON, `{"ts":1764914400,"status":"ok","err":{"code":7}}`, Record{}},
		{ParseNginx, `10.0.0.1 - - [05/Dec/2026:06:00:00 +0000] "GET /a\"b HTTP/1.1" 404 5 "-" "curl/8 \\ x"`, Record{}},
		{ParseLogfmt, "level=info msg=\"tab\there\" n=1", Record{Stream: "stderr", Truncated: true, PathTags: []byte(`,"_container_name_":"app"`)}},
		{ParseRegex, "WARN 2026-12-05T06:00:00Z disk \xff full", Record{Event: time.Date(2026, 12, 5, 5, 59, 0, 0, time.UTC)}},
	} {
		p := mustParser(t, tc.format)
		var f Fields
		if !p.Parse([]byte(tc.line), &f) {
			t.Fatalf("%s did not parse %q", tc.format, tc.line)
		}
		r := tc.r
		r.Read, r.Path, r.Message, r.Fields = parseReadAt, "/var/log/app.log", []byte(tc.line), &f
		if !f.Time.IsZero() {
			r.Event = f.Time
		}
		requireUnparsedForm(t, enc, r, enc.AppendRecord(nil, r))
	}
}

// Ensure a seed that does not fit its record builds nothing.
func TestAppendUnparsed_RefusesABadSeed(t *testing.T) {
	enc, _ := NewEncoder(nil)
	var f Fields
	line := `{"msg":"m","n":1}`
	if !mustParser(t, ParseJSON).Parse([]byte(line), &f) {
		t.Fatal("did not parse")
	}
	rec, head := enc.AppendRecordSeed(nil, nil, Record{Read: parseReadAt, Path: "p", Message: []byte(line), Fields: &f})
	seed := append(head, line...)
	for name, s := range map[string][]byte{
		"empty":             nil,
		"short":             seed[:seedHeader-1],
		"beyond the end":    append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, line...),
		"ends out of order": append([]byte{9, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0}, line...),
	} {
		if out, ok := AppendUnparsed(nil, rec, s); ok || len(out) != 0 {
			t.Errorf("%s seed: built %q", name, out)
		}
	}
}
