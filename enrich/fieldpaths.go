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
// value ({"n":[1,{"b":2}]}): the array's elements share its path. The
// check runs only for records with a dotted key or such an array
// somewhere (Fields.mayClash), so other lines pay nothing for it.
type fieldPaths struct {
	path []byte // the path being walked
	// values holds the hashes of the paths of values (strings, numbers,
	// booleans, arrays of them); objects those of every path that is an
	// object: each strict dot-prefix of a path, and each object's own.
	values, objects []uint64
	scan            JSONScanner
}

func newFieldPaths() *fieldPaths {
	return &fieldPaths{}
}

// clash reports whether the fields f gives a record hold a path that is
// both a value and an object. A hash shared by two different paths can
// only make a good line unparsed, never let a bad one through.
func (fp *fieldPaths) clash(f *Fields) bool {
	fp.values, fp.objects = fp.values[:0], fp.objects[:0]
	if cap(fp.values)+cap(fp.objects) > manyKept {
		fp.values, fp.objects = nil, nil // a hostile line's, let go
	}
	for i := range f.members {
		m := &f.members[i]
		if m.skip {
			continue // the message or the time: not a field of the record
		}
		fp.path = append(fp.path[:0], m.key...)
		if m.form != formJSON || (m.kind != KindObject && m.kind != KindArray) {
			if m.kind != KindNull {
				fp.value()
			}
			continue
		}
		fp.scan.Reset(m.val)
		if !fp.walk() {
			return true // not what the parser checked: refuse, lose nothing
		}
	}
	if cap(fp.path) > manyKept {
		fp.path = nil
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

// walk reads the JSON value at the scanner into paths under fp.path.
// Elasticsearch reads an array of objects as one object per element at
// the array's own path, so elements take the path of their array.
func (fp *fieldPaths) walk() bool {
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
		fp.object()
		if s.Consume('}') {
			return true
		}
		for {
			raw, ok := s.String()
			if !ok || !s.Consume(':') {
				return false
			}
			n := len(fp.path)
			fp.path = append(fp.path, '.')
			if bytes.IndexByte(raw, '\\') >= 0 {
				if fp.path, ok = Unquote(fp.path, raw); !ok {
					return false
				}
			} else {
				fp.path = append(fp.path, raw...)
			}
			if !fp.walk() {
				return false
			}
			fp.path = fp.path[:n]
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
			if !fp.walk() {
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
		if ok && kind != KindNull { // a null maps as nothing
			fp.value()
		}
		return ok
	}
}

// value notes fp.path as a value's.
func (fp *fieldPaths) value() {
	fp.values = append(fp.values, fp.hashPath())
}

// object notes fp.path as an object's.
func (fp *fieldPaths) object() {
	fp.objects = append(fp.objects, fp.hashPath())
}

// hashPath notes every strict dot-prefix of fp.path as an object's and
// returns the hash of the whole path. FNV-1a hashes each prefix on the
// way to the whole, in one pass; maphash, a call per prefix, cost a tenth
// more per ECS line (BenchmarkParser/json-dotted). FNV is not seeded: a
// line made to collide can only have itself shipped unparsed.
func (fp *fieldPaths) hashPath() uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for _, c := range fp.path {
		if c == '.' {
			fp.objects = append(fp.objects, h)
		}
		h = (h ^ uint64(c)) * prime
	}
	return h
}
