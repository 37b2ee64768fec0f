package enrich

import (
	"bytes"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxJSONDepth bounds how deeply a parsed value may nest. Deeper input is
// refused rather than followed, so a hostile line cannot exhaust the stack;
// Elasticsearch's own mapping limit is 20 levels.
const MaxJSONDepth = 64

// JSONScanner walks JSON text without building anything, and checks it
// strictly as it goes: what it accepts may be copied into a record as it
// is, and the record stays valid JSON that backends take. Elasticsearch
// refuses a document with a key twice in any object, or a key that is not
// a field name to it (IsFieldName), so a nested object with such a key is
// refused as a top-level one is.
type JSONScanner struct {
	b []byte
	i int
	// keys holds the keys of the objects being read, innermost last, and
	// unquoted the text of those that had escapes; both are reused.
	keys     [][]byte
	unquoted []byte
	// keysUsed is how many entries of keys were used since Reset.
	keysUsed int
	// many holds, per depth, the keys of an object with more than
	// keysCompared of them, so that checking them is not quadratic;
	// manyBig has bit d set when many[d] held more than manyKept keys
	// since the last Reset.
	many    [MaxJSONDepth]map[string]struct{}
	manyBig uint64
	// mayClash says that since the last Reset a key had a dot in it, an
	// array held an object beside another value, or values nested deep:
	// only then can a path be both a value and an object, or deeper than
	// Elasticsearch maps (fieldPaths).
	mayClash bool
}

// manyKept is how many keys a map of many may have held and still be
// kept for the next line: Go's maps do not shrink, even when cleared, and
// a hostile line's object of 100,000 keys must not hold its megabytes for
// good.
const manyKept = 1024

// keysCompared is how many keys of one object are checked against each
// other one by one; beyond it a map takes over (allocating, which small
// objects never do).
const keysCompared = 32

// Reset starts scanning b.
func (s *JSONScanner) Reset(b []byte) {
	// Keys left past the length of keys point into the last line (or its
	// value being encoded), and would hold it, however long, until a line
	// with as many nested keys came.
	clear(s.keys[:s.keysUsed])
	s.keysUsed = 0
	s.b, s.i = b, 0
	s.keys, s.unquoted = s.keys[:0], s.unquoted[:0]
	if cap(s.keys) > manyKept {
		s.keys = nil // 24 bytes a key: megabytes after a hostile line
	}
	for big := s.manyBig; big != 0; big &= big - 1 {
		s.many[bits.TrailingZeros64(big)] = nil
	}
	s.manyBig = 0
	s.mayClash = false
}

// newKey records raw, a key of the object at depth whose keys start at
// s.keys[base], and reports whether that object had no such key yet.
// Keys are compared unescaped: "m\u0073g" is "msg".
func (s *JSONScanner) newKey(depth, base int, raw []byte) bool {
	key := raw
	if bytes.IndexByte(raw, '\\') >= 0 {
		// Growing unquoted leaves earlier keys in the old array, intact.
		start := len(s.unquoted)
		var ok bool
		if s.unquoted, ok = Unquote(s.unquoted, raw); !ok {
			return false
		}
		key = s.unquoted[start:len(s.unquoted):len(s.unquoted)]
	}
	name, dotted := fieldName(key)
	if !name {
		return false
	}
	s.mayClash = s.mayClash || dotted
	seen := s.keys[base:]
	switch {
	case len(seen) < keysCompared:
		for _, k := range seen {
			if bytes.Equal(k, key) {
				return false
			}
		}
	case len(seen) == keysCompared:
		if s.many[depth] == nil {
			s.many[depth] = make(map[string]struct{}, 2*keysCompared)
		}
		clear(s.many[depth])
		for _, k := range seen {
			s.many[depth][string(k)] = struct{}{}
		}
		fallthrough
	default:
		if _, dup := s.many[depth][string(key)]; dup {
			return false
		}
		s.many[depth][string(key)] = struct{}{}
		if len(s.many[depth]) > manyKept {
			s.manyBig |= 1 << depth
		}
	}
	s.keys = append(s.keys, key)
	s.keysUsed = max(s.keysUsed, len(s.keys))
	return true
}

// AtEnd reports whether only white space is left.
func (s *JSONScanner) AtEnd() bool {
	s.space()
	return s.i == len(s.b)
}

func (s *JSONScanner) space() {
	b, i := s.b, s.i
	// Every JSON space is at most ' ', and most next bytes are not.
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	s.i = i
}

// Consume skips white space and then c, and reports whether c was there.
func (s *JSONScanner) Consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// String reads a string and returns its contents, still escaped. It
// checks the escapes and that the contents are valid UTF-8 without
// control characters. The scanner's fields are copied to locals for the
// loop and written back once: updated through s, they went to memory at
// every byte.
func (s *JSONScanner) String() ([]byte, bool) {
	if !s.Consume('"') {
		return nil, false
	}
	b, start := s.b, s.i
	for i := start; i < len(b); {
		// Most of a log line's text needs no look: plain ASCII, eight
		// bytes at a time, as AppendString skips it on the way out.
		if i += plainPrefix(b[i:]); i == len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], true
		case c == '\\':
			if i+1 >= len(b) {
				return nil, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := parseHex(b[i+2:], 4)
				if !ok {
					return nil, false
				}
				i += 6
				// An escaped surrogate must be a high one followed by
				// its low one (RFC 7493). Strict parsers such as
				// serde_json, and so Vector, refuse a whole document
				// that holds a lone one, so one line copied as it is
				// would sink the batch around it.
				if utf16.IsSurrogate(r) {
					if r >= 0xDC00 || !lowSurrogateAt(b[i:]) {
						return nil, false
					}
					i += 6
				}
			default:
				return nil, false
			}
		case c < 0x20:
			return nil, false
		case c < utf8.RuneSelf:
			i++ // DEL, which JSON lets be
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false
			}
			i += size
		}
	}
	return nil, false
}

// lowSurrogateAt reports whether b starts with an escaped low surrogate.
func lowSurrogateAt(b []byte) bool {
	if len(b) < 2 || b[0] != '\\' || b[1] != 'u' {
		return false
	}
	r, ok := parseHex(b[2:], 4)
	return ok && r >= 0xDC00 && r <= 0xDFFF
}

// ValueKind is the kind of a JSON value.
type ValueKind uint8

// The kinds of JSON value.
const (
	KindString ValueKind = iota + 1
	KindNumber
	KindBool
	KindNull
	KindObject
	KindArray
)

// Value reads any value and returns its text as it stands in the input
// (a string with its quotes) and its kind. A number must be one that
// float64 holds (JSON allows 1e999; backends do not).
func (s *JSONScanner) Value() ([]byte, ValueKind, bool) {
	s.space()
	start := s.i
	kind, ok := s.value(0)
	if !ok {
		return nil, 0, false
	}
	return s.b[start:s.i], kind, true
}

func (s *JSONScanner) value(depth int) (ValueKind, bool) {
	if s.i >= len(s.b) {
		return 0, false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.String()
		return KindString, ok
	case c == '{' || c == '[':
		if depth >= MaxJSONDepth {
			return 0, false
		}
		// An object this deep may be deeper than Elasticsearch maps
		// (fieldPaths counts the names of its path; arrays add none).
		s.mayClash = s.mayClash || depth >= elasticsearchDepth-1
		closing, kind := byte('}'), KindObject
		if c == '[' {
			closing, kind = ']', KindArray
		}
		s.i++
		if s.Consume(closing) {
			return kind, true
		}
		base := len(s.keys)
		// An array's elements share its path in Elasticsearch: objects
		// beside values there make one path both (fieldPaths). An array
		// inside counts as either, for what it holds is not known here.
		var objects, values bool
		for {
			if kind == KindObject {
				key, ok := s.String()
				if !ok || !s.Consume(':') || !s.newKey(depth, base, key) {
					return 0, false
				}
			}
			s.space()
			inner, ok := s.value(depth + 1)
			if !ok {
				return 0, false
			}
			objects = objects || inner == KindObject || inner == KindArray
			values = values || inner != KindObject && inner != KindNull
			if s.Consume(closing) {
				s.keys = s.keys[:base]
				s.mayClash = s.mayClash || kind == KindArray && objects && values
				return kind, true
			}
			if !s.Consume(',') {
				return 0, false
			}
			s.space()
		}
	case c == 't':
		return KindBool, s.literal("true")
	case c == 'f':
		return KindBool, s.literal("false")
	case c == 'n':
		return KindNull, s.literal("null")
	default:
		return KindNumber, s.number()
	}
}

func (s *JSONScanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// number reads a number in JSON's grammar whose magnitude float64 holds.
func (s *JSONScanner) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	intStart := i
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	intDigits := i - intStart
	if intDigits == 0 || intDigits > 1 && b[intStart] == '0' {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		fracStart := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == fracStart {
			return false
		}
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		neg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			neg = b[i] == '-'
			i++
		}
		expStart := i
		for i < len(b) && isDigit(b[i]) {
			if exp < 100000 {
				exp = exp*10 + int(b[i]-'0')
			}
			i++
		}
		if i == expStart {
			return false
		}
		if neg {
			exp = -exp
		}
	}
	s.i = i
	// float64 reaches about 1.8e308: the integer digits and the exponent
	// together say whether the magnitude is beyond it. Tiny numbers round
	// to 0, which is harmless.
	return intDigits-1+exp <= 307
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Unquote appends the unescaped contents of a JSON string (as String
// returns them) to dst. An escaped lone surrogate becomes U+FFFD, as
// encoding/json does.
func Unquote(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(raw) {
			return dst, false
		}
		switch e := raw[i+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := parseHex(raw[i+2:], 4)
			if !ok {
				return dst, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2, ok := parseHex(raw[i+2:], 4); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}

// parseHex reads n hex digits at the start of b.
func parseHex(b []byte, n int) (rune, bool) {
	if len(b) < n {
		return 0, false
	}
	var r rune
	for _, c := range b[:n] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
