package enrich

import (
	"fmt"
	"slices"
)

// LokiLabels gives each file the labels of the Loki stream its records
// belong to: the configured label names, valued from the tags and from
// the file's path tags. In node mode that makes a stream per Pod, as
// Promtail and Alloy make them, rather than one stream for a whole node,
// which Loki's per-stream rate limit would throttle. One goroutine uses
// it.
type LokiLabels struct {
	names []string
	tags  []Tag
	paths *PathTagger // nil when no label comes from a path
	fixed []byte
	cache pathCache
}

// NewLokiLabels returns the labels named by names. A name must be a
// Prometheus label name, which Loki requires of every label.
func NewLokiLabels(names []string, tags []Tag, paths *PathTagger) (*LokiLabels, error) {
	for _, n := range names {
		if !isLabelName(n) {
			return nil, fmt.Errorf("%q is not a Loki label name ([a-zA-Z_][a-zA-Z0-9_]*)", n)
		}
	}
	l := &LokiLabels{names: names, tags: tags, cache: make(pathCache)}
	if paths != nil && slices.ContainsFunc(paths.Names(), func(n string) bool { return slices.Contains(names, n) }) {
		l.paths = paths
	}
	l.fixed = l.appendLabels(nil, nil)
	return l, nil
}

// Fixed returns the labels that come from the tags alone.
func (l *LokiLabels) Fixed() []byte { return l.fixed }

// FromPaths reports whether some label comes from the files' paths, so
// that files differ in their streams.
func (l *LokiLabels) FromPaths() bool { return l.paths != nil }

// For returns the labels of path's stream. It allocates only the first
// time it sees a path; the bytes it returns never change.
func (l *LokiLabels) For(path string) []byte {
	if l.paths == nil {
		return l.fixed
	}
	return l.cache.get(path, func(path string) []byte {
		return l.appendLabels(nil, l.paths.Tags(path))
	})
}

// appendLabels appends the labels as a JSON object, in the order of the
// names. A stream must have a label: with none, it is {"job":"tailcar"}.
func (l *LokiLabels) appendLabels(dst []byte, pathTags []Tag) []byte {
	dst = append(dst, '{')
	n := 0
	for _, name := range l.names {
		value, ok := tagValue(l.tags, name)
		if !ok {
			value, ok = tagValue(pathTags, name)
		}
		if !ok || value == "" { // an empty value is no label to Loki
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendStringFromString(dst, name)
		dst = append(dst, ':')
		dst = appendStringFromString(dst, value)
	}
	if n == 0 {
		dst = append(dst, `"job":"tailcar"`...)
	}
	return append(dst, '}')
}

func tagValue(tags []Tag, name string) (string, bool) {
	for _, t := range tags {
		if t.Name == name {
			return t.Value, true
		}
	}
	return "", false
}

func isLabelName(n string) bool {
	for i, c := range []byte(n) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return n != ""
}
