package enrich

import (
	"bytes"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Nested JSON values as OTLP AnyValues: an object is a kvlist_value, an
// array an array_value, as the Collector's json_parser makes them, so that
// a pipeline reads attributes["user"]["id"] without parsing JSON again.
// Protobuf writes a message's length before the message, so a value is
// walked twice: once to size every value in it (kept in the order the
// values open), once to write it.

// Field numbers, from opentelemetry/proto/common/v1.
const (
	anyArray   protowire.Number = 5 // ArrayValue array_value
	anyKvlist  protowire.Number = 6 // KeyValueList kvlist_value
	listValues protowire.Number = 1 // ArrayValue.values, KeyValueList.values
)

// otlpValues is the OTLPEncoder's state for nested values, reused
// between records.
type otlpValues struct {
	scan JSONScanner
	// sizes holds, for each value in the order it opens, its AnyValue's
	// size, or for an object or array the size of its list.
	sizes []int
	next  int    // the next entry of sizes to write
	key   []byte // an unescaped key
	sized []byte // a scalar encoded to be measured
}

// appendNestedAttribute appends an attribute whose value is val, a JSON
// object or array the scanner checked.
func (e *OTLPEncoder) appendNestedAttribute(dst, key, val []byte) []byte {
	v := &e.values
	v.sizes = v.sizes[:0]
	v.scan.Reset(val)
	size := e.sizeAny()
	v.scan.Reset(val)
	v.next = 0
	dst = appendKeyValue(dst, logAttributes, key, size)
	dst = e.appendAny(dst)
	if cap(v.sizes) > manyKept {
		v.sizes = nil // a hostile line's hundred thousand values, let go
	}
	v.scan.Reset(nil) // val is a piece of the line: do not hold the line
	return dst
}

// sizeAny sizes the AnyValue of the value the scanner is at, and of every
// value within it, and returns its size.
func (e *OTLPEncoder) sizeAny() int {
	v := &e.values
	s := &v.scan
	s.space()
	at := len(v.sizes)
	v.sizes = append(v.sizes, 0)
	open := s.b[s.i]
	if open != '{' && open != '[' {
		val, kind, _ := s.Value()
		v.sized = e.appendScalar(v.sized[:0], val, kind)
		v.sizes[at] = len(v.sized)
		return len(v.sized)
	}
	s.i++
	list := 0
	for first := true; !s.Consume(closingOf(open)); first = false {
		if !first {
			s.Consume(',')
		}
		item := 0
		if open == '{' {
			raw, _ := s.String()
			s.Consume(':')
			keyLen := len(e.keyText(raw))
			item = keyValueSize(keyLen, e.sizeAny())
		} else {
			item = e.sizeAny()
		}
		list += protowire.SizeTag(listValues) + protowire.SizeBytes(item)
	}
	v.sizes[at] = list
	return protowire.SizeTag(anyKvlist) + protowire.SizeBytes(list)
}

// appendAny appends the AnyValue of the value the scanner is at, with the
// sizes sizeAny found.
func (e *OTLPEncoder) appendAny(dst []byte) []byte {
	v := &e.values
	s := &v.scan
	s.space()
	at := v.next
	v.next++
	open := s.b[s.i]
	if open != '{' && open != '[' {
		val, kind, _ := s.Value()
		return e.appendScalar(dst, val, kind)
	}
	field := anyArray
	if open == '{' {
		field = anyKvlist
	}
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(v.sizes[at]))
	s.i++
	for first := true; !s.Consume(closingOf(open)); first = false {
		if !first {
			s.Consume(',')
		}
		if open == '{' {
			raw, _ := s.String()
			s.Consume(':')
			dst = appendKeyValue(dst, listValues, e.keyText(raw), e.nextSize())
		} else {
			dst = protowire.AppendTag(dst, listValues, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(e.nextSize()))
		}
		dst = e.appendAny(dst)
	}
	return dst
}

// nextSize is the AnyValue size of the value the scanner is at, which
// appendAny writes next.
func (e *OTLPEncoder) nextSize() int {
	v := &e.values
	v.scan.space()
	size := v.sizes[v.next]
	if c := v.scan.b[v.scan.i]; c == '{' || c == '[' {
		return protowire.SizeTag(anyKvlist) + protowire.SizeBytes(size)
	}
	return size
}

// keyText returns a key's text, unescaped (the scanner checked it is
// valid UTF-8 and holds no lone surrogate); valid until the next call.
func (e *OTLPEncoder) keyText(raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	e.values.key, _ = Unquote(e.values.key[:0], raw)
	return e.values.key
}

// appendScalar appends the AnyValue of a JSON string, number, boolean or
// null: numbers as ints or doubles, an integer beyond int64 as its digits
// (a double would round it), null as an empty AnyValue.
func (e *OTLPEncoder) appendScalar(dst, val []byte, kind ValueKind) []byte {
	switch kind {
	case KindString:
		return appendStringValue(dst, e.text(val, formJSON))
	case KindNumber:
		if n, ok := parseInt(val); ok {
			dst = protowire.AppendTag(dst, anyInt, protowire.VarintType)
			return protowire.AppendVarint(dst, uint64(n))
		}
		if !isInteger(val) {
			if f, err := strconv.ParseFloat(string(val), 64); err == nil && !math.IsInf(f, 0) {
				dst = protowire.AppendTag(dst, anyDouble, protowire.Fixed64Type)
				return protowire.AppendFixed64(dst, math.Float64bits(f))
			}
		}
		return appendStringValue(dst, val)
	case KindBool:
		dst = protowire.AppendTag(dst, anyBool, protowire.VarintType)
		return protowire.AppendVarint(dst, protowire.EncodeBool(val[0] == 't'))
	}
	return dst // null
}

func closingOf(open byte) byte {
	if open == '{' {
		return '}'
	}
	return ']'
}
