package enrich

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Records for the OTLP sink: each one is an OpenTelemetry LogRecord in
// protobuf, appended field by field without generated types (see the
// README's Design decisions for the measurement). The tags are not in the
// record: they are the resource its records share (Resources), and the
// sink groups records by it.

// Field numbers, from opentelemetry/proto/{logs,common,resource}/v1.
const (
	logTime           protowire.Number = 1  // fixed64 time_unix_nano
	logSeverityNumber protowire.Number = 2  // enum
	logSeverityText   protowire.Number = 3  // string
	logBody           protowire.Number = 5  // AnyValue
	logAttributes     protowire.Number = 6  // repeated KeyValue
	logObservedTime   protowire.Number = 11 // fixed64 observed_time_unix_nano

	keyValueKey   protowire.Number = 1
	keyValueValue protowire.Number = 2

	anyString protowire.Number = 1
	anyBool   protowire.Number = 2
	anyInt    protowire.Number = 3
	anyDouble protowire.Number = 4

	resourceAttributes protowire.Number = 1
)

// Attribute names of the record's own fields, from the OpenTelemetry
// semantic conventions.
const (
	AttrFilePath  = "log.file.path"
	AttrIOStream  = "log.iostream"
	AttrTruncated = FieldTruncated
)

// ResourceNames maps tag names to the semantic conventions' resource
// attribute names. A tag without one keeps its own name.
var ResourceNames = map[string]string{
	TagPodName:       "k8s.pod.name",
	TagNamespace:     "k8s.namespace.name",
	"_node_name_":    "k8s.node.name",
	TagPodUID:        "k8s.pod.uid",
	TagContainerName: "k8s.container.name",
	TagContainerID:   "container.id",
}

// SeverityKeys are the parsed fields whose value becomes the record's
// severity, in order of preference. The field is not repeated as an
// attribute: severity_text holds its text.
var SeverityKeys = [][]byte{[]byte("level"), []byte("severity")}

// OTLPEncoder appends records as OTLP LogRecords. One goroutine uses it:
// it keeps buffers for values that must be decoded before their length is
// known.
type OTLPEncoder struct {
	decoded, valid []byte
	values         otlpValues
}

// NewOTLPEncoder returns an OTLPEncoder.
func NewOTLPEncoder() *OTLPEncoder { return &OTLPEncoder{} }

// AppendRecord appends r as a LogRecord message (without a length prefix)
// to dst. It does not allocate when dst and its buffers have room.
func (e *OTLPEncoder) AppendRecord(dst []byte, r Record) []byte {
	stamp := r.Read
	if !r.Event.IsZero() {
		stamp = r.Event
	}
	dst = protowire.AppendTag(dst, logTime, protowire.Fixed64Type)
	dst = protowire.AppendFixed64(dst, uint64(stamp.UnixNano()))
	dst = protowire.AppendTag(dst, logObservedTime, protowire.Fixed64Type)
	dst = protowire.AppendFixed64(dst, uint64(r.Read.UnixNano()))

	var severity *member
	if r.Fields != nil {
		severity = r.Fields.find(SeverityKeys, false)
		if severity != nil {
			dst = e.appendSeverity(dst, severity)
		}
	}
	switch {
	case r.Fields == nil || r.Fields.message == messageLine:
		dst = e.appendBody(dst, r.Message, formText)
	case r.Fields.message == messageParsed:
		dst = e.appendBody(dst, r.Fields.msgText, r.Fields.msgForm)
	}
	dst = e.appendTextAttribute(dst, logAttributes, AttrFilePath, r.Path)
	if r.Stream != "" {
		dst = appendStringAttribute(dst, AttrIOStream, r.Stream) // stdout or stderr
	}
	if r.Truncated {
		dst = appendBoolAttribute(dst, AttrTruncated, true)
	}
	if r.Fields != nil {
		for i := range r.Fields.members {
			m := &r.Fields.members[i]
			if !m.skip && m != severity {
				dst = e.appendField(dst, m)
			}
		}
	}
	// Most records need neither buffer: one that a huge value grew must
	// not wait, at its size, for the next value with an escape.
	e.decoded, e.valid = Sized(e.decoded, 0), Sized(e.valid, 0)
	return dst
}

// appendBody appends the message as the record's string body.
func (e *OTLPEncoder) appendBody(dst, text []byte, form valueForm) []byte {
	text = e.text(text, form)
	dst = protowire.AppendTag(dst, logBody, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(stringValueSize(len(text))))
	return appendStringValue(dst, text)
}

// appendSeverity appends severity_text and severity_number from a level
// field: a name ("warn", "ERROR", "INFO+2" as slog writes it) or a
// number as pino and bunyan write them (10 trace … 60 fatal).
func (e *OTLPEncoder) appendSeverity(dst []byte, m *member) []byte {
	var number int
	var text []byte
	if m.form == formJSON && m.kind == KindNumber {
		text = m.val
		if n, err := strconv.Atoi(string(m.val)); err == nil {
			number = pinoSeverity(n)
		}
	} else {
		text = e.text(m.val, m.form)
		number = SeverityNumber(text)
	}
	if number > 0 {
		dst = protowire.AppendTag(dst, logSeverityNumber, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(number))
	}
	dst = protowire.AppendTag(dst, logSeverityText, protowire.BytesType)
	return protowire.AppendBytes(dst, text)
}

// severityNames map level names to OTel severity numbers: TRACE 1,
// DEBUG 5, INFO 9, WARN 13, ERROR 17, FATAL 21 (syslog's notice is
// INFO2, its critical, alert and emergency FATAL, as the specification's
// syslog example maps them).
var severityNames = []struct {
	name   string
	number int
}{
	{"trace", 1}, {"trc", 1}, {"debug", 5}, {"dbg", 5},
	{"info", 9}, {"inf", 9}, {"information", 9}, {"informational", 9}, {"notice", 10},
	{"warn", 13}, {"warning", 13}, {"wrn", 13},
	{"error", 17}, {"err", 17}, {"eror", 17},
	{"fatal", 21}, {"ftl", 21}, {"panic", 21}, {"dpanic", 21},
	{"critical", 21}, {"crit", 21}, {"alert", 22}, {"emergency", 23}, {"emerg", 23},
}

// SeverityNumber returns the OTel severity number of a level name, case
// insensitively; 0 (unspecified) for a name it does not know. slog's
// offsets ("INFO+2", "WARN-4") move within or out of the level's range of
// four.
func SeverityNumber(level []byte) int {
	name, offset := level, 0
	if i := bytes.IndexAny(level, "+-"); i > 0 {
		n, err := strconv.Atoi(string(level[i:]))
		if err != nil {
			return 0
		}
		name, offset = level[:i], n
	}
	for _, s := range severityNames {
		if len(name) == len(s.name) && bytes.EqualFold(name, []byte(s.name)) {
			return min(max(s.number+offset, 1), 24)
		}
	}
	return 0
}

// pinoSeverity maps the numeric levels of pino and bunyan.
func pinoSeverity(n int) int {
	switch {
	case n <= 0:
		return 0
	case n <= 10:
		return 1
	case n <= 20:
		return 5
	case n <= 30:
		return 9
	case n <= 40:
		return 13
	case n <= 50:
		return 17
	}
	return 21
}

// appendField appends one parsed field as an attribute: JSON numbers as
// ints or doubles (an integer beyond int64 as its digits, which a double
// would round), booleans as booleans, strings and text as strings,
// nested objects and arrays as kvlist and array values (otlpvalues.go),
// and null as an empty value.
func (e *OTLPEncoder) appendField(dst []byte, m *member) []byte {
	key := e.validKey(m.key)
	if m.form == formJSON {
		switch m.kind {
		case KindObject, KindArray:
			return e.appendNestedAttribute(dst, key, m.val)
		case KindNumber, KindBool, KindNull:
			// A few bytes, measured by being written; as nested values are.
			v := &e.values
			v.sized = e.appendScalar(v.sized[:0], m.val, m.kind)
			return append(appendKeyValue(dst, logAttributes, key, len(v.sized)), v.sized...)
		}
	}
	return appendStringAttribute(dst, key, e.text(m.val, m.form))
}

// validKey returns a key as valid UTF-8. Keys are rarely invalid, and a
// key repaired here lives in its own buffer.
func (e *OTLPEncoder) validKey(key []byte) []byte {
	if utf8.Valid(key) {
		return key
	}
	return appendValidUTF8(nil, key)
}

// text returns a value's text, decoded when it is a JSON string, as
// valid UTF-8 (protobuf strings must be): in e's buffers, valid until
// the next call.
func (e *OTLPEncoder) text(val []byte, form valueForm) []byte {
	if form == formJSON && len(val) >= 2 && val[0] == '"' {
		raw := val[1 : len(val)-1]
		if bytes.IndexByte(raw, '\\') < 0 {
			return e.validBytes(raw)
		}
		var ok bool
		if e.decoded, ok = Unquote(e.decoded[:0], raw); ok {
			return e.validBytes(e.decoded)
		}
	}
	return e.validBytes(val)
}

func (e *OTLPEncoder) validBytes(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	e.valid = appendValidUTF8(e.valid[:0], b)
	return e.valid
}

// appendValidUTF8 appends b with each invalid byte replaced by U+FFFD.
func appendValidUTF8(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[i:i+size]...)
		}
		i += size
	}
	return dst
}

// parseInt reads a JSON integer that fits int64.
func parseInt(b []byte) (int64, bool) {
	if !isInteger(b) || len(b) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

func isInteger(b []byte) bool {
	return bytes.IndexAny(b, ".eE") < 0
}

// Sizes of the nested messages, which protobuf writes after their length.

func stringValueSize(n int) int { return protowire.SizeTag(anyString) + protowire.SizeBytes(n) }

func keyValueSize(keyLen, valueSize int) int {
	return protowire.SizeTag(keyValueKey) + protowire.SizeBytes(keyLen) +
		protowire.SizeTag(keyValueValue) + protowire.SizeBytes(valueSize)
}

func appendStringValue[V []byte | string](dst []byte, text V) []byte {
	dst = protowire.AppendTag(dst, anyString, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(len(text)))
	return append(dst, text...)
}

// appendKeyValue appends a KeyValue whose AnyValue is valueSize bytes
// long, to be appended by the caller, as field number of the enclosing
// message.
func appendKeyValue[K []byte | string](dst []byte, number protowire.Number, key K, valueSize int) []byte {
	dst = protowire.AppendTag(dst, number, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(keyValueSize(len(key), valueSize)))
	dst = protowire.AppendTag(dst, keyValueKey, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = protowire.AppendTag(dst, keyValueValue, protowire.BytesType)
	return protowire.AppendVarint(dst, uint64(valueSize))
}

func appendStringAttribute[K, V []byte | string](dst []byte, key K, text V) []byte {
	return appendStringKeyValue(dst, logAttributes, key, text)
}

// appendStringKeyValue appends a KeyValue with a string value as field
// number of the enclosing message.
func appendStringKeyValue[K, V []byte | string](dst []byte, number protowire.Number, key K, text V) []byte {
	dst = appendKeyValue(dst, number, key, stringValueSize(len(text)))
	return appendStringValue(dst, text)
}

// appendTextAttribute appends a string attribute whose value may not be
// UTF-8 (a path, a tag), repairing it only when it is not.
func (e *OTLPEncoder) appendTextAttribute(dst []byte, number protowire.Number, key, text string) []byte {
	if !utf8.ValidString(key) {
		key = string(appendValidUTF8(nil, []byte(key)))
	}
	if utf8.ValidString(text) {
		return appendStringKeyValue(dst, number, key, text)
	}
	e.valid = appendValidUTF8(e.valid[:0], []byte(text))
	return appendStringKeyValue(dst, number, key, e.valid)
}

func appendBoolAttribute[K []byte | string](dst []byte, key K, v bool) []byte {
	dst = appendKeyValue(dst, logAttributes, key, protowire.SizeTag(anyBool)+1)
	dst = protowire.AppendTag(dst, anyBool, protowire.VarintType)
	return protowire.AppendVarint(dst, protowire.EncodeBool(v))
}

// Resources gives each file the OTLP Resource its records belong to:
// the tags, and the path tags of its file, under their semantic
// conventions names. One goroutine uses it.
type Resources struct {
	tags  []Tag
	paths *PathTagger // nil: every file has the same resource
	fixed []byte
	cache pathCache
}

// NewResources returns the resources for tags and, when paths is not nil,
// each file's path tags.
func NewResources(tags []Tag, paths *PathTagger) *Resources {
	r := &Resources{tags: tags, paths: paths, cache: make(pathCache)}
	r.fixed = AppendResource([]byte{}, tags)
	return r
}

// For returns the encoded Resource of path's records. It allocates only
// the first time it sees a path; the bytes it returns never change.
func (r *Resources) For(path string) []byte {
	if r.paths == nil {
		return r.fixed
	}
	return r.cache.get(path, func(path string) []byte {
		// Never nil, even without a tag: nil means no resource at all, and
		// the batch would count the record in another file's group.
		return AppendResource(AppendResource([]byte{}, r.tags), r.paths.Tags(path))
	})
}

// AppendResource appends tags as the attributes of a Resource message:
// a Resource is its attributes, so resources append to each other.
func AppendResource(dst []byte, tags []Tag) []byte {
	var e OTLPEncoder
	for _, t := range tags {
		name := t.Name
		if semconv, ok := ResourceNames[name]; ok {
			name = semconv
		}
		dst = e.appendTextAttribute(dst, resourceAttributes, name, t.Value)
	}
	return dst
}
