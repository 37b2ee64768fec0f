package ship

import (
	"context"
	"strconv"
)

var _ Sink = (*Loki)(nil)

// LokiPushPath is where the loki sink posts, under the sink URL.
const LokiPushPath = "/loki/api/v1/push"

// Loki posts to the push API as JSON. A sidecar's records share the same
// labels (the Pod's tags do not change while tailcar runs), so its batch
// is one stream; in node mode, labels from the files' paths make a stream
// per Pod, and the batch's Groups are their labels. Entries are in read
// order within a stream, stamped with the event's time. The whole record
// is the line. JSON rather than protobuf+snappy: no generated code or
// extra dependency, the same append-style encoding as every other sink,
// and gzip compresses log lines better than snappy does.
type Loki struct {
	target string
	fixed  []byte // the labels of records without a group, a JSON object
	post   *poster
	// Buffers kept between batches; one goroutine sends. They hold no more
	// than one batch: a buffer per stream, kept, would grow over time to a
	// batch for every place a busy Pod has taken in some batch.
	raw     []byte
	ends    []int       // per group: its entries' end in entries
	entries []lokiEntry // the batch's entries, by group
}

// lokiEntry is one record of a push, with its time.
type lokiEntry struct {
	rec   []byte
	event int64
}

// NewLoki returns the loki sink whose records without a group carry the
// labels fixed, a JSON object of label names and values.
func NewLoki(ep Endpoint, fixed []byte) (*Loki, error) {
	p, err := newPoster(ep)
	if err != nil {
		return nil, err
	}
	return &Loki{target: joinPath(ep.URL, LokiPushPath), fixed: fixed, post: p}, nil
}

// Send pushes the batch, a stream per group of labels.
func (s *Loki) Send(ctx context.Context, b *Batch) error {
	body, err := b.Body(func(dst []byte, b *Batch) ([]byte, error) {
		raw := s.appendPush(s.raw[:0], b)
		body, err := s.post.compress.Append(dst, raw)
		s.raw = b.reuse(raw)
		return body, err
	})
	if err != nil {
		return err
	}
	return s.post.post(ctx, s.target, "application/json", body, 0, nil)
}

// appendPush appends the push request for the unsent records of b: the
// records are placed by group first (a counting sort), so that a node's
// batch of many Pods costs two passes, not one per Pod.
func (s *Loki) appendPush(raw []byte, b *Batch) []byte {
	labels := b.Groups
	if len(labels) == 0 {
		labels = [][]byte{s.fixed}
	}
	s.ends = append(s.ends[:0], make([]int, len(labels))...)
	total := 0
	b.Unsent(func(_ int, _ []byte, r Record) {
		s.ends[r.Group]++
		total++
	})
	next := 0
	for i, n := range s.ends {
		s.ends[i] = next // the group's start, moved to its end as it fills
		next += n
	}
	s.entries = append(s.entries[:0], make([]lokiEntry, total)...)
	b.Unsent(func(_ int, rec []byte, r Record) {
		s.entries[s.ends[r.Group]] = lokiEntry{rec: rec, event: r.Event}
		s.ends[r.Group]++
	})
	raw = append(raw, `{"streams":[`...)
	start := 0
	for i, end := range s.ends {
		if end == start {
			continue
		}
		if start > 0 {
			raw = append(raw, ',')
		}
		raw = append(raw, `{"stream":`...)
		raw = append(raw, labels[i]...)
		raw = append(raw, `,"values":[`...)
		for j, e := range s.entries[start:end] {
			if j > 0 {
				raw = append(raw, ',')
			}
			raw = append(raw, `["`...)
			raw = strconv.AppendInt(raw, e.event, 10)
			raw = append(raw, `",`...)
			raw = appendJSONString(raw, e.rec)
			raw = append(raw, ']')
		}
		raw = append(raw, "]}"...)
		start = end
	}
	clear(s.entries) // the batch's bytes are not ours to keep
	return append(raw, "]}"...)
}

// appendJSONString quotes rec, itself a JSON document: valid JSON holds no
// raw control bytes, so only quotes and backslashes need escaping.
func appendJSONString(dst, rec []byte) []byte {
	dst = append(dst, '"')
	for _, c := range rec {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}
