// Package enrich turns lines read by the tailer into the records tailcar
// ships: a JSON object with the read time, the message, the file and the
// tags taken from the environment and the configuration.
package enrich

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Field names of the record's own fields.
const (
	FieldTimestamp = "@timestamp"
	FieldMessage   = "message"
	FieldFile      = "file"
	FieldStream    = "stream"
	FieldTruncated = "truncated"
	// FieldObserved holds the time tailcar read the record, when
	// @timestamp holds the event's own time.
	FieldObserved = "observed_timestamp"
)

// ownFields are the record's own fields: a tag may not shadow them, and a
// parsed field of one of these names is renamed, so that a record never
// carries the same key twice.
var ownFields = []string{FieldTimestamp, FieldMessage, FieldFile, FieldStream, FieldTruncated, FieldObserved}

// elasticsearchOwn are Elasticsearch's metadata fields: a document that
// holds one at its top is refused ("Field [_id] is a metadata field and
// cannot be added inside a document"), and JSON from MongoDB-backed apps
// often has an _id. A parsed field of one of these names is renamed as if
// it were ours, and a tag may not take one. (_doc_count is left out: a
// document may set it.)
var elasticsearchOwn = []string{"_id", "_index", "_source", "_routing", "_field_names", "_ignored", "_ignored_source",
	"_seq_no", "_version", "_primary_term", "_tier", "_type", "_size", "_meta", "_nested_path", "_data_stream_timestamp", "_tsid"}

// IsFieldName reports whether Elasticsearch takes key as a field name:
// it splits a name at its dots into objects, and refuses a document with
// a name whose pieces are not all there (empty, only white space, a dot
// at either end, two dots in a row). A record with such a field would be
// refused whole, so a line that gives one is not parsed.
func IsFieldName(key []byte) bool {
	ok, _ := fieldName(key)
	return ok
}

// fieldName is IsFieldName, and also reports whether key has a dot: the
// parsers need both for every key, in one pass over it.
func fieldName(key []byte) (ok, dotted bool) {
	blank := true // the piece so far is empty or white space (≤ ' ', as Java's trim)
	for _, c := range key {
		switch {
		case c == '.':
			if blank {
				return false, true
			}
			blank, dotted = true, true
		case c > ' ':
			blank = false
		}
	}
	return !blank, dotted
}

// Tag is one field added to every record.
type Tag struct {
	Name, Value string
}

// TagError says which tag cannot be used, and why.
type TagError struct {
	Index int // in the list given to NewEncoder
	Name  string
	Why   string
}

func (e *TagError) Error() string { return fmt.Sprintf("tag %q %s", e.Name, e.Why) }

// Encoder appends records as JSON objects. The tag fields never change
// while tailcar runs, so they are encoded once, at construction. One
// goroutine uses it: it remembers the last seconds it wrote.
type Encoder struct {
	tags   []byte
	stamps [2]stampCache
	// older is the slot of stamps used less recently: the one a second
	// found in neither replaces.
	older int
}

// stampCache is one second's "2006-01-02T15:04:05": records read or
// stamped within the same second share it, and formatting the date was a
// tenth of the cost of a parsed record. The fraction last written in
// that second comes after it: the lines of one read share their read
// time, and nginx's lines of one second their event time, so most
// records repeat a stamp whole.
type stampCache struct {
	sec  int64
	nsec int
	text [30]byte
	ok   bool
}

// appendTimestamp is AppendTimestamp with the second's text remembered.
// A parsed record carries two times, the event's and the read's, each
// tending to repeat its second: two slots, either of which may hold
// either. (A slot chosen by the second's parity made the two evict each
// other on every record whenever their seconds had the same parity.)
func (e *Encoder) appendTimestamp(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	i := 0
	switch {
	case e.stamps[0].ok && e.stamps[0].sec == sec:
	case e.stamps[1].ok && e.stamps[1].sec == sec:
		i = 1
	default:
		var buf [32]byte
		full := AppendTimestamp(buf[:0], t)
		if len(full) != len(stampCache{}.text) {
			return append(dst, full...) // a year outside 0000–9999, written another way
		}
		i = e.older
		copy(e.stamps[i].text[:], full)
		e.stamps[i].sec, e.stamps[i].nsec, e.stamps[i].ok = sec, t.Nanosecond(), true
	}
	e.older = 1 - i
	slot := &e.stamps[i]
	if ns := t.Nanosecond(); ns != slot.nsec {
		appendFraction(slot.text[:19], ns) // writes in place: text has the room
		slot.nsec = ns
	}
	return append(dst, slot.text[:]...)
}

// NewEncoder returns an Encoder that adds tags to every record, in the
// order given. It fails when a tag would shadow a record field, repeat
// another tag, or make one path a value and an object with one of them.
func NewEncoder(tags []Tag) (*Encoder, error) {
	seen := make(map[string]bool, len(tags))
	var enc []byte
	for i, t := range tags {
		if other := pathClash(t.Name, tags, i); other != "" {
			return nil, &TagError{i, t.Name, fmt.Sprintf("and %s would make one path a value and an object, which Elasticsearch refuses in every record (a dot in a name is a path to it)", other)}
		}
		if slices.Contains(ownFields, t.Name) {
			return nil, &TagError{i, t.Name, "would replace the record's own field"}
		}
		if slices.Contains(elasticsearchOwn, t.Name) {
			return nil, &TagError{i, t.Name, "is one of Elasticsearch's metadata fields, which it refuses inside a document"}
		}
		if seen[t.Name] {
			return nil, &TagError{i, t.Name, "is given twice"}
		}
		if !IsFieldName([]byte(t.Name)) {
			return nil, &TagError{i, t.Name, "is not a field name Elasticsearch takes (empty or blank, a dot at either end, or two in a row)"}
		}
		seen[t.Name] = true
		enc = append(enc, ',')
		enc = AppendString(enc, []byte(t.Name))
		enc = append(enc, ':')
		enc = AppendString(enc, []byte(t.Value))
	}
	return &Encoder{tags: enc}, nil
}

// pathClash returns the record field or the other tag whose name is a
// dot-prefix of name (file for file.name), or has name as its own (a
// for a.b), or "" when there is none.
func pathClash(name string, tags []Tag, self int) string {
	under := func(long, short string) bool {
		return len(long) > len(short) && long[len(short)] == '.' && long[:len(short)] == short
	}
	for _, own := range slices.Concat(ownFields, elasticsearchOwn) {
		if under(name, own) {
			return own
		}
	}
	for j, t := range tags {
		if j != self && (under(name, t.Name) || under(t.Name, name)) {
			return t.Name
		}
	}
	return ""
}

// AppendTimestamp appends t in UTC as RFC 3339 with all nine fractional
// digits (RFC3339Nano drops trailing zeros, and a record read on a whole
// second would then carry no sub-second digits at all, which the contract
// forbids). It is time.AppendFormat's result for that layout, written
// directly from the Unix time: the layout interpreter was a fifth of the
// cost of a parsed nginx record in a CPU profile, and time's Date and
// Clock most of the rest (an event's time misses the encoder's per-second
// cache whenever the lines' seconds are not in order).
func AppendTimestamp(dst []byte, t time.Time) []byte {
	secs := t.Unix()
	days := secs / secondsPerDay
	if secs%secondsPerDay < 0 {
		days--
	}
	clock := int(secs - days*secondsPerDay)
	year, month, day := civilFromDays(days)
	if year < 0 || year > 9999 {
		return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000000Z")
	}
	var b [19]byte
	put2(b[0:], year/100)
	put2(b[2:], year%100)
	b[4] = '-'
	put2(b[5:], month)
	b[7] = '-'
	put2(b[8:], day)
	b[10] = 'T'
	put2(b[11:], clock/3600)
	b[13] = ':'
	put2(b[14:], clock/60%60)
	b[16] = ':'
	put2(b[17:], clock%60)
	return appendFraction(append(dst, b[:]...), t.Nanosecond())
}

// appendFraction appends ".nnnnnnnnnZ": ns, 0 <= ns < 1e9, as nine digits,
// and the zone of a UTC time.
func appendFraction(dst []byte, ns int) []byte {
	var b [11]byte
	b[0] = '.'
	put2(b[1:], ns/10000000)
	put2(b[3:], ns/100000%100)
	put2(b[5:], ns/1000%100)
	put2(b[7:], ns/10%100)
	b[9] = byte('0' + ns%10)
	b[10] = 'Z'
	return append(dst, b[:]...)
}

const secondsPerDay = 86400

// put2 writes v, 0 <= v < 100, as two digits.
func put2(b []byte, v int) {
	b[0], b[1] = twoDigits[2*v], twoDigits[2*v+1]
}

// civilFromDays is the proleptic Gregorian date days after 1970-01-01
// (Howard Hinnant's civil_from_days: eras of 400 years, years starting
// in March so that the leap day comes last).
func civilFromDays(days int64) (year, month, day int) {
	z := days + 719468 // days from 0000-03-01
	era := z / 146097
	if z%146097 < 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365], from March 1st
	mp := (5*doy + 2) / 153                                // [0, 11], March first
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if mp >= 10 {
		month = int(mp - 9)
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

// daysFromCivil is the number of days from 1970-01-01 to the proleptic
// Gregorian date (Hinnant's days_from_civil); month and day in range.
func daysFromCivil(year, month, day int) int64 {
	if month <= 2 {
		year--
	}
	era := year / 400
	if year < 0 && year%400 != 0 {
		era--
	}
	yoe := year - era*400                     // [0, 399]
	doy := (153*((month+9)%12)+2)/5 + day - 1 // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy    // [0, 146096]
	return int64(era)*146097 + int64(doe) - 719468
}

const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"4041424344454647484950515253545556575859606162636465666768697071727374757677787980818283848586878889" +
	"90919293949596979899"

// Record is what one record is made of.
type Record struct {
	// Read is when tailcar read the record; Event the event's own time
	// (parsed from the line or given by the container runtime), zero when
	// unknown.
	Read, Event time.Time
	Path        string
	// Message is the line, or the record assembled from several.
	Message   []byte
	Truncated bool
	// Stream is stdout or stderr for container logs, empty otherwise.
	Stream string
	// PathTags are the file's own fields (PathTagger.Encoded).
	PathTags []byte
	// Fields, when the line was parsed, adds its fields and may replace
	// the message.
	Fields *Fields
}

// AppendRecord appends one record, without a trailing newline, to dst.
// It does not allocate when dst has room.
func (e *Encoder) AppendRecord(dst []byte, r Record) []byte {
	return e.appendRecord(dst, r, nil)
}

// appendRecord appends the record and, when at is not nil, notes where
// its message and its parsed fields are (unparsed.go).
func (e *Encoder) appendRecord(dst []byte, r Record, at *splice) []byte {
	base := len(dst)
	stamp := r.Read
	if !r.Event.IsZero() {
		stamp = r.Event
	}
	dst = append(dst, `{"@timestamp":"`...)
	dst = e.appendTimestamp(dst, stamp)
	dst = append(dst, '"')
	linePlain := false
	if at != nil {
		at.message = len(dst) - base
	}
	switch {
	case r.Fields == nil || r.Fields.message == messageLine:
		dst = append(dst, `,"message":`...)
		start := len(dst)
		dst = AppendString(dst, r.Message)
		if r.Fields != nil && r.Fields.parsedFrom(r.Message) {
			// Each escape lengthens the text, a quote's by one byte: when
			// that is all it grew by, the pieces between the quotes are
			// written as they are.
			grew := len(dst) - start - 2 - len(r.Message)
			linePlain = grew == 0 || grew == bytes.Count(r.Message, []byte{'"'})
		}
	case r.Fields.message == messageParsed:
		dst = append(dst, `,"message":`...)
		dst = appendValue(dst, r.Fields.msgText, r.Fields.msgForm)
	}
	if at != nil {
		at.messageEnd = len(dst) - base
	}
	dst = append(dst, `,"file":`...)
	dst = appendStringFromString(dst, r.Path)
	if r.Stream != "" {
		dst = append(dst, `,"stream":`...)
		dst = appendStringFromString(dst, r.Stream)
	}
	dst = append(dst, e.tags...)
	dst = append(dst, r.PathTags...)
	if r.Truncated {
		dst = append(dst, `,"truncated":true`...)
	}
	if !r.Event.IsZero() {
		dst = append(dst, `,"observed_timestamp":"`...)
		dst = e.appendTimestamp(dst, r.Read)
		dst = append(dst, '"')
	}
	if at != nil {
		at.fields = len(dst) - base
	}
	if r.Fields != nil {
		dst = r.Fields.appendFields(dst, linePlain)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// needsEscape marks the ASCII bytes that cannot stand as themselves in a
// JSON string.
var needsEscape = func() (t [utf8.RuneSelf]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'], t[0x7f] = true, true, true
	return t
}()

// AppendString appends s as a quoted JSON string. Invalid UTF-8 becomes
// U+FFFD and control bytes are escaped, so the result is always valid JSON;
// valid text passes through byte for byte.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; ; {
		i += plainPrefix(s[i:])
		if i >= len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			dst = appendEscapedASCII(dst, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript consumers
		// that treat them as line ends; escaping them costs nothing.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plainPrefix returns the length of s's longest prefix of bytes that pass
// through AppendString as they are: ASCII that needs no escape. Log text
// is mostly such bytes, so they are checked eight at a time, and the
// scan is a function of its own so that its loop keeps everything in
// registers (inlined into AppendString, whose appends may call the
// runtime, it spilled and reloaded its state on every word).
func plainPrefix(s []byte) int {
	n := 0
	for len(s)-n >= 8 && plainWord(binary.LittleEndian.Uint64(s[n:])) {
		n += 8
	}
	for n < len(s) && s[n] < utf8.RuneSelf && !needsEscape[s[n]] {
		n++
	}
	return n
}

// SWAR constants: a byte's worth of 1s and of high bits, in every byte.
const (
	eachByte = 0x0101010101010101
	highBits = 0x8080808080808080
)

// plainWord reports whether none of w's eight bytes is a control byte,
// '"', '\\', DEL or a byte of a multi-byte UTF-8 sequence: bytes that
// pass through AppendString as they are.
func plainWord(w uint64) bool {
	// A byte of 0x80 or more is caught by w's own high bit. With those
	// caught, a lane's high bit after w - n·0x01… marks a byte below n,
	// and after w + 0x01… a DEL; a borrow or carry into the next lane
	// comes only from a lane already caught. x - 0x01… marks a zero byte
	// of x = w ^ c·0x01…: a byte equal to c.
	q, b := w^('"'*eachByte), w^('\\'*eachByte)
	found := w | (w - 0x20*eachByte) | (w + eachByte) | (q - eachByte) | (b - eachByte)
	return found&highBits == 0
}

// appendStringFromString is AppendString for a string argument, without
// converting it to a byte slice (which would allocate).
func appendStringFromString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || needsEscape[c] {
			return AppendString(dst, []byte(s))
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func appendEscapedASCII(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}
