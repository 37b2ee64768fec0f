package enrich

import "unicode/utf8"

// logfmt lines are key=value pairs separated by spaces, as Go's log
// libraries (go-kit, logrus' text format, slog's TextHandler) and Heroku
// write them:
//
//	time=2026-11-24T10:00:00Z level=info msg="user logged in" user=alice took=12ms
//
// A quoted value is unquoted as Go quotes (see logfmtQuoted). A key
// without "=" is a flag and gets the value true. Every other value is
// text: logfmt has no types.
// A line without a single key=value pair is not logfmt.

var jsonTrue = []byte("true")

// parseLogfmt reads the pairs of line into f.
func parseLogfmt(line []byte, f *Fields) bool {
	pairs := 0
	for i := 0; ; {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		start := i
		for i < len(line) && line[i] > ' ' && line[i] != '=' && line[i] != '"' && line[i] != 0x7f {
			i++
		}
		key := line[start:i]
		name, dotted := fieldName(key)
		if !name || !utf8.Valid(key) {
			// A quote, a control byte or "=" where a key should start; a
			// key with a dot at either end or two in a row; or a key that
			// could only be written with U+FFFD in it, making two
			// different keys one.
			return false
		}
		f.mayClash = f.mayClash || dotted
		if i == len(line) || line[i] == ' ' || line[i] == '\t' {
			f.add(key, nil, jsonTrue, formJSON, KindBool)
			continue
		}
		if line[i] != '=' {
			return false
		}
		i++
		var val []byte
		form := formText // decoded
		if i < len(line) && line[i] == '"' {
			var ok bool
			if val, i, ok = f.logfmtQuoted(line, i+1); !ok {
				return false
			}
		} else {
			form = formLine // a quote here refuses the line
			vs := i
			for i < len(line) && line[i] != ' ' && line[i] != '\t' {
				if line[i] == '"' {
					return false
				}
				i++
			}
			val = line[vs:i]
		}
		f.add(key, nil, val, form, 0)
		pairs++
	}
	return pairs > 0
}

// logfmtQuoted reads a quoted value starting after its quote, returning
// it decoded and the index after the closing quote. The escapes are Go's
// (slog's TextHandler and logrus quote with strconv.Quote, go-logfmt
// writes a subset of them), so \xff, \u2028 and \U0001f600 come back as
// what was quoted. An escape Go does not know keeps its backslash: the
// bytes are not ours to lose.
func (f *Fields) logfmtQuoted(line []byte, i int) ([]byte, int, bool) {
	start := len(f.buf)
	for ; i < len(line); i++ {
		switch c := line[i]; c {
		case '"':
			if i+1 < len(line) && line[i+1] != ' ' && line[i+1] != '\t' {
				return nil, 0, false
			}
			return f.buf[start:len(f.buf):len(f.buf)], i + 1, true
		case '\\':
			if i+1 == len(line) {
				return nil, 0, false
			}
			i++
			f.buf, i = appendGoEscape(f.buf, line, i)
		default:
			f.buf = append(f.buf, c)
		}
	}
	return nil, 0, false
}
