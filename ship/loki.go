package ship

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
)

var _ Sink = (*Loki)(nil)

// Loki posts to the push API as JSON. Every record of a batch shares the
// same labels (the Pod's tags do not change while tailcar runs), so a batch
// is one stream, its entries in read order, stamped with the event's time. The whole record is the line.
// JSON rather than protobuf+snappy: no generated code or extra dependency,
// the same append-style encoding as every other sink, and gzip compresses
// log lines better than snappy does.
type Loki struct {
	target string
	stream []byte // {"stream":{...},"values":[
	post   *poster
}

// NewLoki returns the loki sink with the given stream labels.
func NewLoki(ep Endpoint, labels map[string]string) (*Loki, error) {
	p, err := newPoster(ep)
	if err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		// Loki refuses a stream without labels.
		labels = map[string]string{"job": "tailcar"}
	}
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	stream := []byte(`{"streams":[{"stream":{`)
	for i, k := range names {
		if i > 0 {
			stream = append(stream, ',')
		}
		key, _ := json.Marshal(k)
		value, _ := json.Marshal(labels[k])
		stream = append(append(append(stream, key...), ':'), value...)
	}
	stream = append(stream, `},"values":[`...)
	return &Loki{target: joinPath(ep.URL, "/loki/api/v1/push"), stream: stream, post: p}, nil
}

// Send pushes the batch as one stream.
func (s *Loki) Send(ctx context.Context, b *Batch) error {
	body, err := b.Body(func(dst []byte, b *Batch) ([]byte, error) {
		raw := append([]byte(nil), s.stream...)
		first := true
		b.Unsent(func(_ int, rec []byte, r Record) {
			if !first {
				raw = append(raw, ',')
			}
			first = false
			raw = append(raw, `["`...)
			raw = strconv.AppendInt(raw, r.Event, 10)
			raw = append(raw, `",`...)
			raw = appendJSONString(raw, rec)
			raw = append(raw, ']')
		})
		raw = append(raw, "]}]}"...)
		return s.post.compress.Append(dst, raw)
	})
	if err != nil {
		return err
	}
	return s.post.post(ctx, s.target, "application/json", body, 0, nil)
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
