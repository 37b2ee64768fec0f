package tailer

import (
	"bytes"
	"time"

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
	scan enrich.JSONScanner
	buf  []byte
}

// parse decodes {"log":"…","stream":"stdout","time":"…"}; other keys are
// skipped. A log without its trailing newline is a part that the stream's
// next record continues (docker splits lines at 16 KiB).
func (d *dockerDecoder) parse(raw []byte) (chunk, bool) {
	s := &d.scan
	s.Reset(raw)
	if !s.Consume('{') {
		return chunk{}, false
	}
	var c chunk
	var gotLog, gotTime bool
	for first := true; ; first = false {
		if s.Consume('}') {
			break
		}
		if !first && !s.Consume(',') {
			return chunk{}, false
		}
		key, ok := s.String()
		if !ok || !s.Consume(':') {
			return chunk{}, false
		}
		switch string(key) {
		case "log":
			raw, ok := s.String()
			if !ok {
				return chunk{}, false
			}
			if d.buf, ok = enrich.Unquote(d.buf[:0], raw); !ok {
				return chunk{}, false
			}
			gotLog = true
		case "stream":
			v, ok := s.String()
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
			v, ok := s.String()
			if !ok {
				return chunk{}, false
			}
			if c.time, ok = enrich.ParseRFC3339(v); !ok {
				return chunk{}, false
			}
			gotTime = true
		default:
			if _, _, ok := s.Value(); !ok {
				return chunk{}, false
			}
		}
	}
	if !gotLog || !gotTime || c.stream == streamNone || !s.AtEnd() {
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
