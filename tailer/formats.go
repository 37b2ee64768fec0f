package tailer

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tailcar/tailcar/enrich"
)

// chunk is one raw line of a container log, decoded: a whole line, or a
// part of one (partial) that the next chunks of its stream continue.
type chunk struct {
	stream  int
	content []byte
	time    time.Time
	partial bool
}

// parseCRI decodes a line as containerd, CRI-O and conmon write it:
//
//	2026-11-24T10:00:00.123456789Z stdout F the line
//	2026-11-24T10:00:00.1+00:00 stderr P:tag1:tag2 part of a longer line
//
// The first tag is P (partial: the line goes on in the stream's next
// chunk) or F (full); further tags are for the future and ignored.
func parseCRI(raw []byte) (chunk, bool) {
	sp := bytes.IndexByte(raw, ' ')
	if sp < 0 {
		return chunk{}, false
	}
	t, ok := enrich.ParseRFC3339(raw[:sp])
	if !ok {
		return chunk{}, false
	}
	rest := raw[sp+1:]
	var c chunk
	switch {
	case bytes.HasPrefix(rest, []byte("stdout ")):
		c.stream, rest = streamStdout, rest[len("stdout "):]
	case bytes.HasPrefix(rest, []byte("stderr ")):
		c.stream, rest = streamStderr, rest[len("stderr "):]
	default:
		return chunk{}, false
	}
	tagEnd := bytes.IndexByte(rest, ' ')
	tags := rest
	if tagEnd >= 0 {
		tags, c.content = rest[:tagEnd], rest[tagEnd+1:]
	}
	if colon := bytes.IndexByte(tags, ':'); colon >= 0 {
		tags = tags[:colon]
	}
	switch string(tags) { // compiled without a copy
	case "P":
		c.partial = true
	case "F":
	default:
		return chunk{}, false
	}
	c.time = t
	return c, true
}

// dockerDecoder decodes docker's json-file lines, reusing one buffer for
// the unescaped log text: a chunk's content is valid until the next line.
type dockerDecoder struct {
	buf []byte
}

// parse decodes {"log":"…","stream":"stdout","time":"…"}; other keys are
// skipped. A log without its trailing newline is a part that the stream's
// next record continues (docker splits lines at 16 KiB).
func (d *dockerDecoder) parse(raw []byte) (chunk, bool) {
	s := jsonScanner{b: raw}
	if !s.consume('{') {
		return chunk{}, false
	}
	var c chunk
	var gotLog, gotTime bool
	for first := true; ; first = false {
		if s.consume('}') {
			break
		}
		if !first && !s.consume(',') {
			return chunk{}, false
		}
		key, ok := s.rawString()
		if !ok || !s.consume(':') {
			return chunk{}, false
		}
		switch string(key) {
		case "log":
			raw, ok := s.rawString()
			if !ok {
				return chunk{}, false
			}
			if d.buf, ok = unquote(d.buf[:0], raw); !ok {
				return chunk{}, false
			}
			gotLog = true
		case "stream":
			v, ok := s.rawString()
			if !ok {
				return chunk{}, false
			}
			switch string(v) {
			case "stdout":
				c.stream = streamStdout
			case "stderr":
				c.stream = streamStderr
			default:
				return chunk{}, false
			}
		case "time":
			v, ok := s.rawString()
			if !ok {
				return chunk{}, false
			}
			if c.time, ok = enrich.ParseRFC3339(v); !ok {
				return chunk{}, false
			}
			gotTime = true
		default:
			if !s.skipValue(0) {
				return chunk{}, false
			}
		}
	}
	s.space()
	if !gotLog || !gotTime || c.stream == streamNone || s.i != len(s.b) {
		return chunk{}, false
	}
	c.content = d.buf
	if n := len(c.content); n > 0 && c.content[n-1] == '\n' {
		c.content = c.content[:n-1]
		if n := len(c.content); n > 0 && c.content[n-1] == '\r' {
			c.content = c.content[:n-1]
		}
	} else {
		c.partial = true
	}
	return c, true
}

// detectFormat decides a file's format from its first complete line.
func (f *Follower) detectFormat(raw []byte) Format {
	if _, ok := parseCRI(raw); ok {
		return FormatCRI
	}
	if _, ok := f.docker.parse(raw); ok {
		return FormatDocker
	}
	return FormatLines
}

// jsonScanner walks one JSON object without building anything.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *jsonScanner) consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// rawString returns a string's contents, still escaped.
func (s *jsonScanner) rawString() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			v := s.b[start:s.i]
			s.i++
			return v, true
		default:
			s.i++
		}
	}
	return nil, false
}

// maxNesting bounds skipValue's recursion on hostile input.
const maxNesting = 64

func (s *jsonScanner) skipValue(depth int) bool {
	if depth > maxNesting {
		return false
	}
	s.space()
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, ok := s.rawString()
		return ok
	case '{', '[':
		open, close := s.b[s.i], byte('}')
		if open == '[' {
			close = ']'
		}
		s.i++
		if s.consume(close) {
			return true
		}
		for {
			if open == '{' {
				if _, ok := s.rawString(); !ok || !s.consume(':') {
					return false
				}
			}
			if !s.skipValue(depth + 1) {
				return false
			}
			if s.consume(close) {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	default: // number, true, false, null
		start := s.i
		for s.i < len(s.b) && strings.IndexByte(",}] \t\r\n", s.b[s.i]) < 0 {
			s.i++
		}
		return s.i > start
	}
}

// unquote appends the unescaped contents of a JSON string to dst. An
// escaped lone surrogate becomes U+FFFD, as encoding/json does.
func unquote(dst, raw []byte) ([]byte, bool) {
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
			r, ok := hex4(raw[i+2:])
			if !ok {
				return dst, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(raw[min(i+2, len(raw)):]); ok && i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						dst = utf8.AppendRune(dst, dec)
						i += 6
						continue
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

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
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
