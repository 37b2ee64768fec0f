package enrich

import (
	"bytes"
	"slices"
)

// fieldPaths finds a record that Elasticsearch would refuse for its own
// shape: it reads a dot in a field name as a path (a.b is b inside the
// object a), and a path cannot be both a value and an object. {"a":1,
// "a.b":2} is refused ("can't merge a non object mapping"), and so is
// {"a":{"b":1},"a.b.c":2}; {"a":{"x":1},"a.b":2} merges into one object
// and is taken, as is ECS's {"log.level":"info","log":{"logger":"x"}}.
// Such a document would be dropped as poison, so the line is shipped
// unparsed instead. So is one with an array that holds an object beside a
// value ({"n":[1,{"b":2}]}): the array's elements share its path. So is
// one whose objects nest deeper than Elasticsearch maps them
// (elasticsearchDepth). The check runs only for records with a dotted key,
// such an array, or objects nested that deep somewhere (Fields.mayClash),
// so other lines pay nothing for it.
type fieldPaths struct {
	// values holds the hashes of the paths of values (strings, numbers,
	// booleans, arrays of them); objects those of every path that is an
	// object: each strict dot-prefix of a path, and each object's own.
	values, objects []uint64
	key             []byte // a key with escapes, unescaped
	scan            JSONScanner
}

func newFieldPaths() *fieldPaths {
	return &fieldPaths{}
}

// A path's hash is FNV-1a over its text, carried on from its parent's:
// a key adds only its own bytes, so a line costs its length however deep
// its values sit. Rehashing each value's whole path took 29 s for a
// hostile 1 MiB line of 60 nested 8,000-byte keys over 50,000 values.
// FNV is not seeded: a line made to collide can only have itself shipped
// unparsed.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// elasticsearchDepth is Elasticsearch's default index.mapping.depth.limit:
// the record is depth 1, and each object in it one more, so an object
// whose path has this many names, or a value whose path has more, makes
// the document refused ("Limit of mapping depth [20] has been exceeded").
// Arrays add no depth; a dot in a name does.
const elasticsearchDepth = 20

// clash reports whether the fields f gives a record hold a path that is
// both a value and an object, or one deeper than elasticsearchDepth. A
// hash shared by two different paths can only make a good line unparsed,
// never let a bad one through.
func (fp *fieldPaths) clash(f *Fields) bool {
	fp.values, fp.objects = fp.values[:0], fp.objects[:0]
	if cap(fp.values)+cap(fp.objects) > manyKept {
		fp.values, fp.objects = nil, nil // a hostile line's, let go
	}
	if cap(fp.key) > manyKept {
		fp.key = nil
	}
	for i := range f.members {
		m := &f.members[i]
		if m.skip {
			continue // the message or the time: not a field of the record
		}
		h, dots := fp.hashOn(fnvOffset, m.key)
		names := 1 + dots
		if m.form != formJSON || (m.kind != KindObject && m.kind != KindArray) {
			if names > elasticsearchDepth {
				return true
			}
			if m.kind != KindNull {
				fp.values = append(fp.values, h)
			}
			continue
		}
		fp.scan.Reset(m.val)
		if !fp.walk(h, names) {
			return true // not what the parser checked: refuse, lose nothing
		}
	}
	if len(fp.values) == 0 || len(fp.objects) == 0 {
		return false
	}
	slices.Sort(fp.values)
	slices.Sort(fp.objects)
	for i, j := 0, 0; i < len(fp.values) && j < len(fp.objects); {
		switch v, o := fp.values[i], fp.objects[j]; {
		case v == o:
			return true
		case v < o:
			i++
		default:
			j++
		}
	}
	return false
}

// hashOn carries the hash h of a path on over key's bytes, noting the
// hash at each of key's dots as an object's; it also counts the dots.
func (fp *fieldPaths) hashOn(h uint64, key []byte) (uint64, int) {
	dots := 0
	for _, c := range key {
		if c == '.' {
			fp.objects = append(fp.objects, h)
			dots++
		}
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h, dots
}

// below is the hash h of a path carried on over the dot that joins a key
// below it.
func below(h uint64) uint64 {
	return (h ^ '.') * fnvPrime
}

// walk reads the JSON value at the scanner, at the path whose hash is h
// and which has names names. Elasticsearch reads an array of objects as
// one object per element at the array's own path, so elements take the
// path of their array. It reports false for a value too deep.
func (fp *fieldPaths) walk(h uint64, names int) bool {
	s := &fp.scan
	s.space()
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '{':
		s.i++
		// An object makes its path an object's, whatever it holds: even
		// {"b":null} beside a value in an array is refused.
		if names >= elasticsearchDepth {
			return false
		}
		fp.objects = append(fp.objects, h)
		if s.Consume('}') {
			return true
		}
		for {
			key, ok := s.String()
			if !ok || !s.Consume(':') {
				return false
			}
			if bytes.IndexByte(key, '\\') >= 0 {
				if fp.key, ok = Unquote(fp.key[:0], key); !ok {
					return false
				}
				key = fp.key
			}
			kh, dots := fp.hashOn(below(h), key)
			if !fp.walk(kh, names+1+dots) {
				return false
			}
			if s.Consume('}') {
				return true
			}
			if !s.Consume(',') {
				return false
			}
		}
	case '[':
		s.i++
		if s.Consume(']') {
			return true
		}
		for {
			if !fp.walk(h, names) {
				return false
			}
			if s.Consume(']') {
				return true
			}
			if !s.Consume(',') {
				return false
			}
		}
	default:
		_, kind, ok := s.Value()
		if !ok || names > elasticsearchDepth {
			return false
		}
		if kind != KindNull { // a null maps as nothing
			fp.values = append(fp.values, h)
		}
		return true
	}
}
