package enrich

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Parse formats, as TAILCAR_PARSE names them.
const (
	ParseNone   = "none"
	ParseJSON   = "json"
	ParseNginx  = "nginx"
	ParseRegex  = "regex"
	ParseLogfmt = "logfmt"
)

// RenamePrefix is put before a parsed field whose name tailcar's own
// fields or the tags already use: an app's "file" or "_pod_name_" is
// kept as "app_file" or "app__pod_name_", and never replaces ours. So is
// one named as an Elasticsearch metadata field: "_id" becomes "app__id".
const RenamePrefix = "app_"

// maxFields bounds the fields taken from one line. A line with more is
// shipped unparsed: checking names for uniqueness costs the square of
// their number.
const maxFields = 256

// ParserConfig says how lines are parsed.
type ParserConfig struct {
	// Format is one of ParseJSON, ParseNginx, ParseRegex, ParseLogfmt.
	Format string
	// Regex, for ParseRegex, has the named groups that become fields.
	Regex *regexp.Regexp
	// MessageKeys name the parsed fields that may hold the message, in
	// order of preference (json, logfmt).
	MessageKeys []string
	// TimeKeys name the parsed fields that may hold the event's time, in
	// order of preference.
	TimeKeys []string
	// Time reads a time field's value.
	Time TimeFormat
	// Taken are the field names tailcar and the tags already use; a parsed
	// field of one of these names is renamed.
	Taken []string
}

// Parser turns a line into fields. It keeps its buffers between lines,
// so that parsing allocates nothing per line; one goroutine uses it.
type Parser struct {
	cfg   ParserConfig
	taken map[string]bool
	// takenShape has bit len%64 of row b set for each taken name that
	// starts with b: most keys are told apart from every taken name by it,
	// without hashing them for the map.
	takenShape  [256]uint64
	messageKeys [][]byte
	timeKeys    [][]byte
	groups      [][]byte // regex group names, by submatch index
	// fixedKeys: the format's field names are known and distinct (nginx),
	// so they need no check for repeats; renameAny says whether any of them
	// is taken.
	fixedKeys, renameAny bool
	nginx                nginxParser
	json                 JSONScanner
	paths                *fieldPaths
	// The last time text read, and its time; lastTimeLen 0 when none.
	lastTimeText [64]byte
	lastTimeLen  int
	lastTime     time.Time
}

// NewParser checks cfg and returns its Parser.
func NewParser(cfg ParserConfig) (*Parser, error) {
	p := &Parser{cfg: cfg, taken: make(map[string]bool), paths: newFieldPaths()}
	for _, name := range slices.Concat(ownFields, elasticsearchOwn, cfg.Taken) {
		// A tag k8s.pod is the object k8s to Elasticsearch: an app's k8s
		// would collide with it.
		for i := range len(name) {
			if name[i] == '.' {
				p.take(name[:i])
			}
		}
		p.take(name)
	}
	for _, k := range cfg.MessageKeys {
		p.messageKeys = append(p.messageKeys, []byte(k))
	}
	for _, k := range cfg.TimeKeys {
		p.timeKeys = append(p.timeKeys, []byte(k))
	}
	switch cfg.Format {
	case ParseJSON, ParseLogfmt:
		p.renameAny = true
	case ParseNginx:
		p.fixedKeys = true
		for _, k := range nginxKeys {
			p.renameAny = p.renameAny || p.taken[string(k.name)]
		}
	case ParseRegex:
		p.renameAny = true
		if cfg.Regex == nil {
			return nil, fmt.Errorf("the regex parser needs an expression")
		}
		named := false
		for _, g := range cfg.Regex.SubexpNames() {
			p.groups = append(p.groups, []byte(g))
			named = named || g != ""
		}
		if !named {
			return nil, fmt.Errorf("the expression has no named group, so it would give no field")
		}
	default:
		return nil, fmt.Errorf("unknown format %q", cfg.Format)
	}
	return p, nil
}

// DefaultTimeKeys are the fields that hold the event's time, per format,
// when TAILCAR_TIME_KEY is not set.
func DefaultTimeKeys(format string) []string {
	switch format {
	case ParseNginx:
		return []string{"time_local"}
	case ParseJSON, ParseLogfmt:
		return []string{"@timestamp", "time", "timestamp", "ts"}
	case ParseRegex:
		return []string{"time", "timestamp"}
	}
	return nil
}

// messageState says where a record's message comes from.
type messageState uint8

const (
	messageLine   messageState = iota // the line itself
	messageParsed                     // a parsed field (Fields.message)
	messageNone                       // none: the fields are the record
)

// valueForm says how a field's value is written.
type valueForm uint8

const (
	formText valueForm = iota // bytes to be written as a JSON string
	formJSON                  // JSON text checked by the scanner, written as it is
	// formLine is formText that is a piece of the parsed line itself,
	// without a '"', cut at an ASCII byte or between runes. When the line
	// went into the message needing no escape but its quotes, such a
	// piece needs none, and is written without being scanned again:
	// nginx's fields are most of its line, and its quotes are around them.
	formLine
)

// member is one field found in a line.
type member struct {
	key []byte
	// field, when the name is known in advance, is its JSON form
	// (,"key":), so that it is not escaped again for every record.
	field []byte
	val   []byte
	form  valueForm
	kind  ValueKind // for formJSON
	skip  bool      // taken as the message or the time
}

// add appends a member, written in place, every field (a reused slot
// holds an earlier line's member): a member built as a composite
// literal and appended was built on the stack and copied into the slice,
// and in perf a stall at each copy took a quarter of the nginx parser's
// samples; written field by field, an nginx line parses and encodes in
// about 30 ns less (BenchmarkParser/nginx, bench/performance.md). The
// slot is taken by hand: slices.Grow here cost the nginx benchmark 4 %
// more (ship.Batch.next, less hot, uses it).
func (f *Fields) add(key, field, val []byte, form valueForm, kind ValueKind) {
	n := len(f.members)
	if n == cap(f.members) {
		f.members = append(f.members, member{})
	} else {
		f.members = f.members[:n+1]
	}
	m := &f.members[n]
	m.key, m.field, m.val = key, field, val
	m.form, m.kind, m.skip = form, kind, false
}

// Fields is what a parser found in one line: the fields to add to the
// record, the message, and the event's time. It is valid until the next
// Parse with it.
type Fields struct {
	line    []byte // the line parsed, for formLine
	members []member
	given   int    // the length of the line the members were last read from
	buf     []byte // decoded keys and values; never reallocated during a parse
	message messageState
	msgText []byte // the message, decoded (formText) or JSON text (formJSON)
	msgForm valueForm
	// Time is the event's time, when a time field held one it could read.
	Time time.Time
	// TimeFound says a time field was present (read or not).
	TimeFound bool
	// mayClash says a key, at any depth, had a dot in it, an array held
	// an object beside another value, or values nested deep: only then
	// can a path be both a value and an object, or deeper than
	// Elasticsearch maps (fieldPaths).
	mayClash bool
}

func (f *Fields) reset(lineLen int) {
	if f.given > keptBytes {
		// Members past the next line's count would otherwise keep
		// pointing into that long line, parsed or not, and hold it.
		// Clearing after every line, long or not, cost the nginx parse
		// 5 % (BenchmarkParser/nginx, 601 against 569 ns, medians).
		clear(f.members[:cap(f.members)])
	}
	f.given = lineLen
	f.members = f.members[:0]
	// Decoded text is never longer than the line it comes from, so with
	// this room, slices into buf stay valid for the whole parse.
	// Renamed keys and a decoded time add at most the line again, plus the
	// prefixes.
	f.buf = Sized(f.buf, 2*lineLen+len(RenamePrefix)*maxFields)
	f.line, f.message, f.msgText, f.Time, f.TimeFound, f.mayClash = nil, messageLine, nil, time.Time{}, false, false
}

// parsedFrom reports whether msg is the very line f was parsed from (not
// merely equal to it): only then are its formLine values pieces of msg.
func (f *Fields) parsedFrom(msg []byte) bool {
	return len(f.line) == len(msg) && (len(msg) == 0 || &f.line[0] == &msg[0])
}

// Len is the number of fields the record gets.
func (f *Fields) Len() int {
	n := 0
	for _, m := range f.members {
		if !m.skip {
			n++
		}
	}
	return n
}

// Parse parses line into f. It reports false when the line is not of the
// format (or is hostile: too deep, too many fields, a name taken twice);
// then f holds nothing, and the line is shipped as it is.
func (p *Parser) Parse(line []byte, f *Fields) bool {
	f.reset(len(line))
	var ok bool
	switch p.cfg.Format {
	case ParseJSON:
		ok = p.parseJSON(line, f)
	case ParseNginx:
		ok = p.nginx.parse(line, f)
	case ParseRegex:
		ok = p.parseRegex(line, f)
	case ParseLogfmt:
		ok = parseLogfmt(line, f)
	}
	if ok && len(f.members) > maxFields {
		ok = false
	}
	if ok {
		ok = p.settle(f)
	}
	if !ok {
		f.reset(0)
		return false
	}
	f.line = line
	return true
}

// repeatsAKey reports whether two members have the same key.
func (f *Fields) repeatsAKey() bool {
	for i := range f.members {
		for j := range i {
			if bytes.Equal(f.members[i].key, f.members[j].key) {
				return true
			}
		}
	}
	return false
}

// settle picks the message and the time among the fields and checks that
// every name the record will carry is unique.
func (p *Parser) settle(f *Fields) bool {
	if !p.fixedKeys && f.repeatsAKey() {
		return false // the same key twice: which one would be meant?
	}
	if p.messageKeys != nil {
		f.message = messageNone
		if m := f.find(p.messageKeys, true); m != nil {
			m.skip = true
			f.message, f.msgText, f.msgForm = messageParsed, m.val, m.form
		}
	} else if m := p.regexMessage(f); m != nil {
		// A regex group named message is the message.
		m.skip = true
		f.message, f.msgText, f.msgForm = messageParsed, m.val, m.form
	}
	// The first time field that reads as a time is the event's time; one
	// that does not stays a field of its own.
	for _, k := range p.timeKeys {
		m := f.find([][]byte{k}, false)
		if m == nil {
			continue
		}
		f.TimeFound = true
		if t, ok := p.readTime(f, m); ok {
			f.Time = t
			m.skip = true // @timestamp holds it now
			break
		}
	}
	// A renamed field must not meet another field of its new name.
	for i := range f.members {
		if !p.renameAny {
			break
		}
		m := &f.members[i]
		if m.skip || !p.isTaken(m.key) {
			continue
		}
		start := len(f.buf)
		f.buf = append(f.buf, RenamePrefix...)
		f.buf = append(f.buf, m.key...)
		m.key, m.field = f.buf[start:len(f.buf):len(f.buf)], nil
		if p.isTaken(m.key) {
			return false
		}
		for j := range f.members {
			if j != i && !f.members[j].skip && bytes.Equal(f.members[j].key, m.key) {
				return false
			}
		}
	}
	return !f.mayClash || !p.paths.clash(f)
}

// isTaken reports whether a field named key would collide with one of
// tailcar's fields or a tag.
func (p *Parser) isTaken(key []byte) bool {
	if len(key) == 0 || p.takenShape[key[0]] == 0 {
		return false // no taken name, nor a prefix of one, starts so
	}
	if p.isTakenName(key) {
		return true
	}
	// Elasticsearch reads file.name as the field name of the object file:
	// it collides with our file as an app's file would.
	for i, c := range key {
		if c == '.' && p.isTakenName(key[:i]) {
			return true
		}
	}
	return false
}

func (p *Parser) isTakenName(key []byte) bool {
	return len(key) > 0 && p.takenShape[key[0]]&(1<<(len(key)%64)) != 0 && p.taken[string(key)]
}

func (p *Parser) take(name string) {
	p.taken[name] = true
	if name != "" {
		p.takenShape[name[0]] |= 1 << (len(name) % 64)
	}
}

// regexMessage is the regex group named message, if any; no other
// format without message keys (nginx) has one.
func (p *Parser) regexMessage(f *Fields) *member {
	if p.cfg.Format != ParseRegex {
		return nil
	}
	return f.find([][]byte{[]byte("message")}, true)
}

// find returns the first field named by keys, in the order of keys; with
// onlyText, only a string value counts.
func (f *Fields) find(keys [][]byte, onlyText bool) *member {
	for _, k := range keys {
		for i := range f.members {
			m := &f.members[i]
			if m.skip || !bytes.Equal(m.key, k) {
				continue
			}
			if onlyText && m.form == formJSON && m.kind != KindString {
				continue
			}
			return m
		}
	}
	return nil
}

// readTime reads the event's time from a field.
func (p *Parser) readTime(f *Fields, m *member) (time.Time, bool) {
	val, number := m.val, false
	if m.form == formJSON {
		switch m.kind {
		case KindString:
			raw := val[1 : len(val)-1]
			if bytes.IndexByte(raw, '\\') >= 0 {
				start := len(f.buf)
				var ok bool
				if f.buf, ok = Unquote(f.buf, raw); !ok {
					return time.Time{}, false
				}
				raw = f.buf[start:]
			}
			val = raw
		case KindNumber:
			number = true
		default:
			return time.Time{}, false
		}
	}
	// Lines come many to a second, and an app writes its time the same
	// way each time: the last text read is remembered with its time.
	if !number && p.lastTimeLen > 0 && bytes.Equal(val, p.lastTimeText[:p.lastTimeLen]) {
		return p.lastTime, true
	}
	t, ok := p.cfg.Time.Parse(val, number)
	if ok && !number && len(val) > 0 && len(val) <= len(p.lastTimeText) {
		p.lastTimeLen = copy(p.lastTimeText[:], val)
		p.lastTime = t
	}
	return t, ok
}

// appendFields appends the fields, each as ,"name":value. linePlain says
// the line f was parsed from needed no escape as a JSON string but for
// its quotes.
func (f *Fields) appendFields(dst []byte, linePlain bool) []byte {
	for _, m := range f.members {
		if m.skip {
			continue
		}
		if m.field != nil {
			dst = append(dst, m.field...)
		} else {
			dst = append(dst, ',')
			dst = AppendString(dst, m.key)
			dst = append(dst, ':')
		}
		if linePlain && m.form == formLine {
			dst = append(dst, '"')
			dst = append(dst, m.val...)
			dst = append(dst, '"')
			continue
		}
		dst = appendValue(dst, m.val, m.form)
	}
	return dst
}

func appendValue(dst, val []byte, form valueForm) []byte {
	if form == formJSON {
		return append(dst, val...)
	}
	return AppendString(dst, val)
}

// parseJSON takes the top-level fields of a line that is one JSON object.
func (p *Parser) parseJSON(line []byte, f *Fields) bool {
	s := &p.json
	s.Reset(line)
	if !s.Consume('{') {
		return false
	}
	for first := true; ; first = false {
		if s.Consume('}') {
			break
		}
		if !first && !s.Consume(',') {
			return false
		}
		rawKey, ok := s.String()
		if !ok || !s.Consume(':') {
			return false
		}
		key := rawKey
		if bytes.IndexByte(rawKey, '\\') >= 0 {
			start := len(f.buf)
			if f.buf, ok = Unquote(f.buf, rawKey); !ok {
				return false
			}
			key = f.buf[start:len(f.buf):len(f.buf)]
		}
		name, dotted := fieldName(key)
		if !name {
			return false
		}
		f.mayClash = f.mayClash || dotted
		val, kind, ok := s.Value()
		if !ok {
			return false
		}
		if len(f.members) == maxFields {
			return false
		}
		f.add(key, nil, val, formJSON, kind)
	}
	f.mayClash = f.mayClash || s.mayClash
	return s.AtEnd()
}

// parseRegex takes the named groups of the expression that matched.
func (p *Parser) parseRegex(line []byte, f *Fields) bool {
	loc := p.cfg.Regex.FindSubmatchIndex(line)
	if loc == nil {
		return false
	}
	for i, name := range p.groups {
		if len(name) == 0 || loc[2*i] < 0 {
			continue
		}
		// RE2 matches whole runes, so a group's bounds fall between them.
		val, form := line[loc[2*i]:loc[2*i+1]], formLine
		if bytes.IndexByte(val, '"') >= 0 {
			form = formText
		}
		f.add(name, nil, val, form, 0)
	}
	return true
}
