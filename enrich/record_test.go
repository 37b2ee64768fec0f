package enrich

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var readAt = time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)

// Ensure a record has exactly the contract's shape: @timestamp, message,
// file, the tags in order, and truncated only when cut.
func TestEncoder_RecordShape(t *testing.T) {
	enc, err := NewEncoder([]Tag{{"_pod_name_", "web-7d9f"}, {"_namespace_", "shop"}, {"team", "a\"b"}})
	if err != nil {
		t.Fatal(err)
	}
	got := string(enc.AppendRecord(nil, Record{Read: readAt, Path: "/var/log/nginx/access.log", Message: []byte(`10.0.0.1 - - "GET / HTTP/1.1" 200`)}))
	want := `{"@timestamp":"2026-11-24T10:00:00.123456789Z","message":"10.0.0.1 - - \"GET / HTTP/1.1\" 200","file":"/var/log/nginx/access.log","_pod_name_":"web-7d9f","_namespace_":"shop","team":"a\"b"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	cut := string(enc.AppendRecord(nil, Record{Read: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Path: "f", Message: []byte("m"), Truncated: true}))
	if !strings.HasPrefix(cut, `{"@timestamp":"2026-01-02T02:04:05.000000000Z"`) || !strings.HasSuffix(cut, `,"truncated":true}`) {
		t.Fatalf("got %s: want UTC with sub-second digits and truncated", cut)
	}
}

// Ensure a tag can neither shadow a record field nor repeat.
func TestNewEncoder_RefusesClashingTags(t *testing.T) {
	for _, tags := range [][]Tag{{{"message", "x"}}, {{"@timestamp", "x"}}, {{"file", "x"}}, {{"a", "1"}, {"a", "2"}},
		// a path that would be a value and an object in every record
		{{"file.name", "x"}}, {{"message.id", "x"}}, {{"team", "x"}, {"team.name", "y"}}, {{"k8s.pod.name", "x"}, {"k8s.pod", "y"}},
		// Elasticsearch's metadata fields, refused inside a document
		{{"_id", "x"}}, {{"_index", "x"}}, {{"_source.x", "y"}}} {
		if _, err := NewEncoder(tags); err == nil {
			t.Errorf("NewEncoder(%v) accepted", tags)
		}
	}
	// Paths that only share a start, or that merge into one object.
	if _, err := NewEncoder([]Tag{{"k8s.pod.name", "p"}, {"k8s.namespace.name", "n"}, {"filename", "f"}, {"team", "t"}, {"teams.x", "y"}}); err != nil {
		t.Error(err)
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", `"plain text"`},
		{`quote " and backslash \`, `"quote \" and backslash \\"`},
		{"new\nline\ttab\rcr", `"new\nline\ttab\rcr"`},
		{"nul\x00esc\x1bdel\x7f", `"nul\u0000esc\u001bdel\u007f"`},
		{"héllo wörld 日本語 🚀", `"héllo wörld 日本語 🚀"`},
		{"bad \xff\xfe byte", `"bad \ufffd\ufffd byte"`},
		{"cut \xe6\x97", `"cut \ufffd\ufffd"`},
		{"sep \u2028 \u2029", `"sep \u2028 \u2029"`},
		{"", `""`},
	} {
		if got := string(AppendString(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("AppendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// checkRecord asserts a record of message decodes, and that its message is
// the input with each invalid byte replaced by U+FFFD and nothing else.
func checkRecord(t *testing.T, enc *Encoder, msg []byte) {
	t.Helper()
	rec := enc.AppendRecord(nil, Record{Read: readAt, Path: "/p", Message: msg})
	var got map[string]any
	if err := json.Unmarshal(rec, &got); err != nil {
		t.Fatalf("invalid JSON for %q: %v: %s", msg, err, rec)
	}
	// Converting to runes replaces each invalid byte with U+FFFD, as the
	// encoder does.
	if want := string([]rune(string(msg))); got["message"] != want {
		t.Fatalf("message %q, want %q", got["message"], want)
	}
}

// Ensure any bytes at all make a valid JSON record whose message keeps
// every valid rune.
func TestAppendRecord_AlwaysValidJSON(t *testing.T) {
	enc, _ := NewEncoder([]Tag{{"t", "v"}})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		msg := make([]byte, rng.IntN(64))
		for i := range msg {
			msg[i] = byte(rng.IntN(256))
		}
		checkRecord(t, enc, msg)
	}
}

func FuzzAppendRecord(f *testing.F) {
	for _, s := range []string{"", "a", "\xff", "\"\\\n", "日本\xe6\x97", "\x00\x1f\x7f"} {
		f.Add([]byte(s))
	}
	enc, _ := NewEncoder([]Tag{{"t", "v"}})
	f.Fuzz(func(t *testing.T, msg []byte) { checkRecord(t, enc, msg) })
}

// Ensure encoding a record allocates nothing once the buffer has grown:
// this runs for every line.
func TestAppendRecord_NoAllocations(t *testing.T) {
	enc, _ := NewEncoder([]Tag{{"_pod_name_", "web"}, {"_namespace_", "shop"}})
	msg := []byte(`10.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET /api/v1/items?seq=42 HTTP/1.1" 200 512 "-" "Mozilla/5.0 \xff"`)
	buf := make([]byte, 0, 4096)
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		buf = enc.AppendRecord(buf[:0], Record{Read: now, Path: "/var/log/nginx/access.log", Message: msg})
	}); n != 0 {
		t.Fatalf("AppendRecord allocates %.1f times per record, want 0", n)
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	enc, _ := NewEncoder([]Tag{{"_pod_name_", "web"}, {"_namespace_", "shop"}})
	msg := []byte(`10.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET /api/v1/items?seq=42 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"`)
	buf := make([]byte, 0, 4096)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		buf = enc.AppendRecord(buf[:0], Record{Read: now, Path: "/var/log/nginx/access.log", Message: msg})
	}
}

// Ensure AppendTimestamp writes what time.AppendFormat writes for RFC 3339
// with nine fractional digits, for times across the years 1–9999.
func TestAppendTimestamp_MatchesTheLayout(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000000000Z07:00"
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 12, 2, 10, 0, 0, 0, time.FixedZone("x", -3600)),
		// Year 10000 in UTC: 9999-12-31T23:00 at -05:00 is a valid event
		// time, and takes the layout's path.
		time.Date(9999, 12, 31, 23, 0, 0, 5, time.FixedZone("x", -5*3600)),
	}
	for i := range 10000 {
		times = append(times, time.Unix(int64(i)*24_000_000+int64(i)*7919, int64(i)*104729%1e9))
	}
	// Before 1970 as well (negative Unix times), down to the year 1, and
	// the days around each leap day and each turn of a century.
	first, last := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		times = append(times, time.Unix(first+rng.Int64N(last-first+1), rng.Int64N(1e9)))
	}
	for _, year := range []int{1, 4, 100, 400, 1600, 1700, 1900, 1969, 1970, 2000, 2024, 2100, 9996, 9999} {
		for _, md := range [][2]int{{2, 28}, {2, 29}, {3, 1}, {12, 31}, {1, 1}} {
			tm := time.Date(year, time.Month(md[0]), md[1], 23, 59, 59, 999999999, time.UTC)
			times = append(times, tm, tm.Add(time.Nanosecond))
		}
	}
	for _, tm := range times {
		if got, want := string(AppendTimestamp(nil, tm)), tm.UTC().Format(layout); got != want {
			t.Fatalf("AppendTimestamp(%v) = %s, want %s", tm, got, want)
		}
	}
}

// appendStringByteByByte is AppendString without the eight-byte steps:
// the reference the fast path must agree with.
func appendStringByteByByte(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if needsEscape[c] {
				dst = appendEscapedASCII(dst, c)
			} else {
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// Ensure the eight-bytes-at-a-time path escapes exactly what the byte by
// byte one does, wherever in a word the byte that needs care falls.
func TestAppendString_WordsAgreeWithBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("abcdefgh XYZ0123456789-_/.:\"\\\x00\x01\x1f\x7f\x80\xbf\xc3\xa9\xe2\x80\xa8\xff")
	for n := range 20000 {
		s := make([]byte, rng.IntN(40))
		for i := range s {
			if rng.IntN(4) == 0 {
				s[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				s[i] = byte('a' + rng.IntN(26))
			}
		}
		if n < 256 {
			s = append(bytes.Repeat([]byte("x"), n%16), byte(n)) // every byte value at every offset
		}
		got, want := AppendString(nil, s), appendStringByteByByte(nil, s)
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

// Ensure the remembered second gives the same text as formatting afresh,
// across seconds, days and the two slots.
func TestEncoder_TimestampCache(t *testing.T) {
	enc := mustEncoder(t)
	base := time.Date(2026, 12, 31, 23, 59, 58, 999999999, time.UTC)
	// Two seconds of the same parity taken in turn (an event's and a
	// read's), then a third.
	for _, d := range []time.Duration{0, 1, time.Second, 2 * time.Second, -time.Second, 0, 3*time.Second + 5, 24 * time.Hour,
		2 * time.Second, 4 * time.Second, 2*time.Second + 7, 4*time.Second + 9, 6 * time.Second, 2 * time.Second} {
		ts := base.Add(d)
		got := enc.appendTimestamp(nil, ts)
		if want := AppendTimestamp(nil, ts); !bytes.Equal(got, want) {
			t.Fatalf("%v: %s, want %s", ts, got, want)
		}
	}
	// A stamp repeated whole, its second with another fraction and back,
	// and years written another way, between and after them.
	for _, ts := range []time.Time{base, base, base.Add(-5), base, base.Add(-5), base.Add(-5),
		time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC), base,
		time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), base, base.Add(-5)} {
		got := enc.appendTimestamp(nil, ts)
		if want := AppendTimestamp(nil, ts); !bytes.Equal(got, want) {
			t.Fatalf("%v: %s, want %s", ts, got, want)
		}
	}
	// An event's second and a read's of the same parity, in turn, are
	// both remembered: neither evicts the other.
	event, read := base.Add(2*time.Second), base.Add(4*time.Second)
	for range 3 {
		enc.appendTimestamp(nil, event)
		enc.appendTimestamp(nil, read)
	}
	held := map[int64]bool{enc.stamps[0].sec: enc.stamps[0].ok, enc.stamps[1].sec: enc.stamps[1].ok}
	if !held[event.Unix()] || !held[read.Unix()] {
		t.Errorf("after an event's and a read's second in turn the slots hold %+v; want both", enc.stamps)
	}
}

// Ensure plainWord agrees with the byte table for every pair of byte
// values in neighbouring lanes (a borrow or carry crosses only into the
// next lane) and for random words.
func TestPlainWord_AgreesWithTable(t *testing.T) {
	plainByte := func(c byte) bool { return c < utf8.RuneSelf && !needsEscape[c] }
	check := func(w uint64) {
		want := true
		for i := range 8 {
			want = want && plainByte(byte(w>>(8*i)))
		}
		if got := plainWord(w); got != want {
			t.Fatalf("plainWord(%#016x) = %v, want %v", w, got, want)
		}
	}
	for _, filler := range []uint64{'a', ' ', '!', '#', '[', ']', '~'} {
		for lane := range 7 {
			for c1 := range uint64(256) {
				for c2 := range uint64(256) {
					w := filler * eachByte
					w &^= 0xffff << (8 * lane)
					check(w | c1<<(8*lane) | c2<<(8*(lane+1)))
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1_000_000 {
		check(rng.Uint64())
		check(rng.Uint64() & 0x7f7f7f7f7f7f7f7f)
	}
}

// BenchmarkAppendString writes the strings of a parsed nginx record: the
// line and the fields taken from it.
func BenchmarkAppendString(b *testing.B) {
	strs := [][]byte{
		[]byte(`10.1.2.3 - - [25/Nov/2026:10:00:00 +0000] "GET /api/v1/items/5?seq=7 HTTP/1.1" 200 512 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"`),
		[]byte("10.1.2.3"), []byte("GET /api/v1/items/5?seq=7 HTTP/1.1"), []byte("GET"), []byte("/api/v1/items/5?seq=7"),
		[]byte("HTTP/1.1"), []byte("https://shop.example.com/"), []byte("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"),
	}
	buf := make([]byte, 0, 4096)
	for b.Loop() {
		buf = buf[:0]
		for _, s := range strs {
			buf = AppendString(buf, s)
		}
	}
}
