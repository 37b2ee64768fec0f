package enrich

import "bytes"

// nginx's combined format, Debian's default, and Apache's common and
// combined formats, which share its shape:
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//	%h %l %u %t "%r" %>s %b ["%{Referer}i" "%{User-agent}i"]
//
// Fields are named after nginx's variables; the request line is split
// into request_method, request_uri and server_protocol. A "-"
// means absent, and the field is left out. Inside quotes, nginx writes a
// quote as \x22 and Apache as \", and Apache white space as \n or \t; all
// are decoded.

// nginx field names, with their JSON form, built once.
var (
	keyRemoteAddr     = newFieldKey("remote_addr")
	keyRemoteIdent    = newFieldKey("remote_ident")
	keyRemoteUser     = newFieldKey("remote_user")
	keyTimeLocal      = newFieldKey("time_local")
	keyRequest        = newFieldKey("request")
	keyRequestMethod  = newFieldKey("request_method")
	keyRequestURI     = newFieldKey("request_uri")
	keyServerProtocol = newFieldKey("server_protocol")
	keyStatus         = newFieldKey("status")
	keyBodyBytesSent  = newFieldKey("body_bytes_sent")
	keyHTTPReferer    = newFieldKey("http_referer")
	keyHTTPUserAgent  = newFieldKey("http_user_agent")
)

// nginxKeys are every field the nginx parser may give.
var nginxKeys = []fieldKey{keyRemoteAddr, keyRemoteIdent, keyRemoteUser, keyTimeLocal, keyRequest, keyRequestMethod,
	keyRequestURI, keyServerProtocol, keyStatus, keyBodyBytesSent, keyHTTPReferer, keyHTTPUserAgent}

// fieldKey is a field name known in advance, with its JSON form
// (,"name":) ready to append.
type fieldKey struct {
	name, field []byte
}

func newFieldKey(name string) fieldKey {
	field := append([]byte{','}, AppendString(nil, []byte(name))...)
	return fieldKey{name: []byte(name), field: append(field, ':')}
}

type nginxParser struct{}

// parse reads one access line into f.
func (nginxParser) parse(line []byte, f *Fields) bool {
	c := cursor{b: line}
	addr, ok := c.word()
	if !ok {
		return false
	}
	ident, ok := c.word()
	if !ok {
		return false
	}
	user, ok := c.word()
	if !ok {
		return false
	}
	timeLocal, ok := c.bracketed()
	if !ok {
		return false
	}
	request, requestForm, ok := c.quoted(f)
	if !ok {
		return false
	}
	status, ok := c.word()
	if !ok || !isStatus(status) {
		return false
	}
	size, ok := c.word()
	if !ok || !isCount(size) {
		return false
	}
	// Words may hold a quote; quoted values cannot, unless decoded.
	f.text(keyRemoteAddr, addr, formText)
	f.text(keyRemoteIdent, ident, formText)
	f.text(keyRemoteUser, user, formText)
	f.text(keyTimeLocal, timeLocal, formText)
	// The request line is given in its parts, as Fluent Bit's and
	// Filebeat's nginx parsers give it; the whole line is the message. A
	// third copy of the URI made W1-nginx's records 8 % longer and cost
	// 5-12 % of its CPU (README, "Design decisions"). A request that does
	// not split (bytes that are not HTTP) is kept whole.
	if method, rest, ok := bytes.Cut(request, []byte{' '}); ok {
		f.text(keyRequestMethod, method, requestForm)
		if i := bytes.LastIndexByte(rest, ' '); i >= 0 {
			f.text(keyRequestURI, rest[:i], requestForm)
			f.text(keyServerProtocol, rest[i+1:], requestForm)
		} else {
			f.text(keyRequestURI, rest, requestForm)
		}
	} else {
		f.text(keyRequest, request, requestForm)
	}
	f.number(keyStatus, status)
	f.number(keyBodyBytesSent, size)
	if c.end() {
		return true // common format
	}
	referer, refererForm, ok := c.quoted(f)
	if !ok {
		return false
	}
	agent, agentForm, ok := c.quoted(f)
	if !ok {
		return false
	}
	f.text(keyHTTPReferer, referer, refererForm)
	f.text(keyHTTPUserAgent, agent, agentForm)
	// nginx formats often append fields ($request_time, $upstream_*) after
	// the combined ones; they are kept in the message, not refused.
	return true
}

// text adds a text field, unless it is "-" or empty (absent). form is
// formLine for a piece of the line, formText for decoded text.
func (f *Fields) text(key fieldKey, val []byte, form valueForm) {
	if len(val) == 0 || len(val) == 1 && val[0] == '-' {
		return
	}
	f.add(key.name, key.field, val, form, 0)
}

// number adds a field already checked to be digits, as a JSON number.
func (f *Fields) number(key fieldKey, val []byte) {
	if len(val) == 1 && val[0] == '-' {
		return
	}
	f.add(key.name, key.field, val, formJSON, KindNumber)
}

func isStatus(b []byte) bool {
	return len(b) == 3 && isDigit(b[0]) && isDigit(b[1]) && isDigit(b[2]) && b[0] != '0'
}

// isCount reports whether b is "-" or a number without leading zeros
// (JSON refuses them) and short enough for an exact float64.
func isCount(b []byte) bool {
	if len(b) == 1 && b[0] == '-' {
		return true
	}
	if len(b) == 0 || len(b) > 15 || len(b) > 1 && b[0] == '0' {
		return false
	}
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// cursor walks a line of space-separated tokens.
type cursor struct {
	b []byte
	i int
}

func (c *cursor) end() bool {
	for c.i < len(c.b) && c.b[c.i] == ' ' {
		c.i++
	}
	return c.i == len(c.b)
}

// word reads up to the next space.
func (c *cursor) word() ([]byte, bool) {
	if c.end() {
		return nil, false
	}
	start := c.i
	for c.i < len(c.b) && c.b[c.i] != ' ' {
		c.i++
	}
	return c.b[start:c.i], true
}

// bracketed reads [ … ].
func (c *cursor) bracketed() ([]byte, bool) {
	if c.end() || c.b[c.i] != '[' {
		return nil, false
	}
	end := bytes.IndexByte(c.b[c.i:], ']')
	if end < 0 {
		return nil, false
	}
	v := c.b[c.i+1 : c.i+end]
	c.i += end + 1
	return v, true
}

// quoted reads " … ", decoding its escapes into f.buf when there are any
// (formText), and otherwise returning the line's own bytes (formLine).
func (c *cursor) quoted(f *Fields) ([]byte, valueForm, bool) {
	if c.end() || c.b[c.i] != '"' {
		return nil, formText, false
	}
	c.i++
	start := c.i
	escaped := false
	for c.i < len(c.b) {
		// Jump to the next quote or backslash: most values have neither
		// until their end.
		rest := c.b[c.i:]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			break
		}
		if k := bytes.IndexByte(rest[:j], '\\'); k >= 0 {
			j = k
		}
		c.i += j
		switch c.b[c.i] {
		case '\\':
			escaped = true
			c.i++
		case '"':
			v := c.b[start:c.i]
			c.i++
			if c.i < len(c.b) && c.b[c.i] != ' ' {
				return nil, formText, false // a quote inside a value that nobody escaped
			}
			if !escaped {
				return v, formLine, true
			}
			return f.decodeNginx(v), formText, true
		}
		c.i++
	}
	return nil, formText, false
}

// decodeNginx appends v, escapes decoded (escapes.go), to f.buf and
// returns it.
func (f *Fields) decodeNginx(v []byte) []byte {
	start := len(f.buf)
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			f.buf, i = appendGoEscape(f.buf, v, i+1)
			continue
		}
		f.buf = append(f.buf, v[i])
	}
	return f.buf[start:len(f.buf):len(f.buf)]
}
