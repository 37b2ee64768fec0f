package ship

import (
	"context"
	"strconv"
)

var _ Sink = (*Loki)(nil)

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
	// Reused between batches: each group's place in the body.
	streams []lokiStream
}

// lokiStream is one group's entries, appended as they come.
type lokiStream struct {
	values []byte
}

// NewLoki returns the loki sink whose records without a group carry the
// labels fixed, a JSON object of label names and values.
func NewLoki(ep Endpoint, fixed []byte) (*Loki, error) {
	p, err := newPoster(ep)
	if err != nil {
		return nil, err
	}
	return &Loki{target: joinPath(ep.URL, "/loki/api/v1/push"), fixed: fixed, post: p}, nil
}

// Send pushes the batch, a stream per group of labels.
func (s *Loki) Send(ctx context.Context, b *Batch) error {
	body, err := b.Body(func(dst []byte, b *Batch) ([]byte, error) {
		return s.post.compress.Append(dst, s.appendPush(nil, b))
	})
	if err != nil {
		return err
	}
	return s.post.post(ctx, s.target, "application/json", body, 0, nil)
}

// appendPush appends the push request for the unsent records of b.
func (s *Loki) appendPush(raw []byte, b *Batch) []byte {
	labels := b.Groups
	if len(labels) == 0 {
		labels = [][]byte{s.fixed}
	}
	if cap(s.streams) < len(labels) {
		s.streams = make([]lokiStream, len(labels))
	}
	s.streams = s.streams[:len(labels)]
	for i := range s.streams {
		s.streams[i].values = s.streams[i].values[:0]
	}
	b.Unsent(func(_ int, rec []byte, r Record) {
		st := &s.streams[r.Group]
		if len(st.values) > 0 {
			st.values = append(st.values, ',')
		}
		st.values = append(st.values, `["`...)
		st.values = strconv.AppendInt(st.values, r.Event, 10)
		st.values = append(st.values, `",`...)
		st.values = appendJSONString(st.values, rec)
		st.values = append(st.values, ']')
	})
	raw = append(raw, `{"streams":[`...)
	first := true
	for i, st := range s.streams {
		if len(st.values) == 0 {
			continue
		}
		if !first {
			raw = append(raw, ',')
		}
		first = false
		raw = append(raw, `{"stream":`...)
		raw = append(raw, labels[i]...)
		raw = append(raw, `,"values":[`...)
		raw = append(raw, st.values...)
		raw = append(raw, "]}"...)
	}
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
