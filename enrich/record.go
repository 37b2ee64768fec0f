// Package enrich turns lines read by the tailer into the records tailcar
// ships: a JSON object with the read time, the message, the file and the
// tags taken from the environment and the configuration.
package enrich

import (
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
// while tailcar runs, so they are encoded once, at construction.
type Encoder struct {
	tags []byte
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

// appendDigits appends v, 0 <= v < 10^width, zero-padded to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

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
	dst = AppendTimestamp(dst, stamp)
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
		dst = AppendTimestamp(dst, r.Read)
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
