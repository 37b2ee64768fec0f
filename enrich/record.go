// Package enrich turns lines read by the tailer into the records tailcar
// ships: a JSON object with the read time, the message, the file and the
// tags taken from the environment and the configuration.
package enrich

import (
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
}

// stampCache is one second's "2006-01-02T15:04:05": records read or
// stamped within the same second share it, and formatting the date was a
// tenth of the cost of a parsed record.
type stampCache struct {
	sec  int64
	text [19]byte
	ok   bool
}

// appendTimestamp is AppendTimestamp with the second's text remembered.
// Event times and read times each tend to repeat their second, so they
// have a slot each (by the second's parity, which alternates with them
// rarely enough).
func (e *Encoder) appendTimestamp(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	c := &e.stamps[sec&1]
	if !c.ok || c.sec != sec {
		var full [32]byte
		copy(c.text[:], AppendTimestamp(full[:0], t))
		c.sec, c.ok = sec, true
	}
	dst = append(dst, c.text[:]...)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond(), 9)
	return append(dst, 'Z')
}

// NewEncoder returns an Encoder that adds tags to every record, in the
// order given. It fails when a tag would shadow a record field or repeat
// another tag.
func NewEncoder(tags []Tag) (*Encoder, error) {
	seen := make(map[string]bool, len(tags))
	var enc []byte
	for i, t := range tags {
		if slices.Contains(ownFields, t.Name) {
			return nil, &TagError{i, t.Name, "would replace the record's own field"}
		}
		if seen[t.Name] {
			return nil, &TagError{i, t.Name, "is given twice"}
		}
		seen[t.Name] = true
		enc = append(enc, ',')
		enc = AppendString(enc, []byte(t.Name))
		enc = append(enc, ':')
		enc = AppendString(enc, []byte(t.Value))
	}
	return &Encoder{tags: enc}, nil
}

// AppendTimestamp appends t in UTC as RFC 3339 with all nine fractional
// digits (RFC3339Nano drops trailing zeros, and a record read on a whole
// second would then carry no sub-second digits at all, which the contract
// forbids). It is time.AppendFormat's result for that layout, written
// directly: the layout interpreter was a fifth of the cost of a parsed
// record. Years outside 0–9999 cannot reach it (event times are checked).
func AppendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond(), 9)
	return append(dst, 'Z')
}

// appendDigits appends v, 0 <= v < 10^width, zero-padded to width digits,
// two at a time.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [10]byte
	i := len(buf)
	for v >= 10 {
		i -= 2
		copy(buf[i:], twoDigits[2*(v%100):2*(v%100)+2])
		v /= 100
	}
	if v > 0 || i == len(buf) {
		i--
		buf[i] = byte('0' + v)
	}
	for len(buf)-i < width {
		i--
		buf[i] = '0'
	}
	return append(dst, buf[i:]...)
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
	stamp := r.Read
	if !r.Event.IsZero() {
		stamp = r.Event
	}
	dst = append(dst, `{"@timestamp":"`...)
	dst = e.appendTimestamp(dst, stamp)
	dst = append(dst, '"')
	switch {
	case r.Fields == nil || r.Fields.message == messageLine:
		dst = append(dst, `,"message":`...)
		dst = AppendString(dst, r.Message)
	case r.Fields.message == messageParsed:
		dst = append(dst, `,"message":`...)
		dst = appendValue(dst, r.Fields.msgText, r.Fields.msgForm)
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
	if r.Fields != nil {
		dst = r.Fields.appendFields(dst)
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
	for i := 0; i < len(s); {
		// Eight bytes at a time while none needs a look of its own: log
		// text is mostly plain ASCII, and this was a fifth of the cost of
		// a parsed record.
		for i+8 <= len(s) && plainWord(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if !needsEscape[c] {
				i++
				continue
			}
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

// SWAR constants: a byte's worth of 1s and of high bits, in every byte.
const (
	eachByte = 0x0101010101010101
	highBits = 0x8080808080808080
)

// plainWord reports whether none of w's eight bytes is a control byte,
// '"', '\\', DEL or a byte of a multi-byte UTF-8 sequence: bytes that
// pass through AppendString as they are.
func plainWord(w uint64) bool {
	// (x - 0x01…) & ^x & 0x80… is non-zero exactly when some byte of x is
	// zero; (w - n·0x01…) & ^w & 0x80… when some byte is below n (n ≤ 0x80).
	q, b, d := w^('"'*eachByte), w^('\\'*eachByte), w^(0x7f*eachByte)
	found := (w - 0x20*eachByte) & ^w // a control byte
	found |= (q - eachByte) & ^q      // '"'
	found |= (b - eachByte) & ^b      // '\\'
	found |= (d - eachByte) & ^d      // DEL
	return (found|w)&highBits == 0    // w: a byte of 0x80 or more
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
