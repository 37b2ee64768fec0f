package ship

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

var (
	_ Sink = (*Elasticsearch)(nil)
	_ Sink = (*Loki)(nil)
)

// joinPath appends suffix to u's path and keeps its query, so that
// http://vl:9428/insert/elasticsearch?_msg_field=message works.
func joinPath(u *url.URL, suffix string) string {
	c := *u
	c.Path = strings.TrimSuffix(c.Path, "/") + suffix
	c.RawPath = ""
	return c.String()
}

// Elasticsearch posts to the _bulk API with create actions, which data
// streams require. Each document's _id comes from its file generation and
// offset, so a batch sent again after a lost answer creates no duplicate:
// the repeat gets 409, which counts as delivered.
type Elasticsearch struct {
	target string
	index  []byte // the index name as a JSON string
	post   *poster
	// maxAnswer bounds the bulk answer read; it lists every item.
	maxAnswer int64
}

// NewElasticsearch returns the elasticsearch sink writing to index.
func NewElasticsearch(ep Endpoint, index string) (*Elasticsearch, error) {
	p, err := newPoster(ep)
	if err != nil {
		return nil, err
	}
	name, _ := json.Marshal(index)
	return &Elasticsearch{target: joinPath(ep.URL, "/_bulk"), index: name, post: p, maxAnswer: 64 << 20}, nil
}

// bulkAnswer is the part of a _bulk answer tailcar reads.
type bulkAnswer struct {
	Errors bool `json:"errors"`
	Items  []map[string]struct {
		Status int             `json:"status"`
		Error  json.RawMessage `json:"error"`
	} `json:"items"`
}

// Send posts the records not yet settled. Items refused with 429 or 5xx
// make Send fail so that the shipper retries them, and only them; items
// refused otherwise (a mapping error) are dropped and counted.
func (s *Elasticsearch) Send(ctx context.Context, b *Batch) error {
	// The documents not yet settled, in order: the body holds exactly
	// these, and the bulk answer has one item for each.
	var sent []int
	b.Each(func(i int, _ []byte, _ Record) { sent = append(sent, i) })
	body, err := b.Body(func(dst []byte, b *Batch) ([]byte, error) {
		var raw []byte
		b.Each(func(i int, rec []byte, r Record) {
			raw = append(raw, `{"create":{"_index":`...)
			raw = append(raw, s.index...)
			raw = append(raw, `,"_id":"`...)
			raw = strconv.AppendUint(raw, r.Ack.Source, 16)
			raw = append(raw, '-')
			raw = strconv.AppendInt(raw, r.Ack.Offset, 10)
			raw = append(raw, "\"}}\n"...)
			raw = append(raw, rec...)
			raw = append(raw, '\n')
		})
		return s.post.compress.Append(dst, raw)
	})
	if err != nil {
		return err
	}
	answer, err := s.post.post(ctx, s.target, "application/x-ndjson", body, s.maxAnswer)
	if err != nil {
		return err
	}
	var bulk bulkAnswer
	if err := json.Unmarshal(answer, &bulk); err != nil {
		return fmt.Errorf("read bulk answer: %w", err)
	}
	if len(b.settled) < len(b.Records) {
		b.settled = append(b.settled, make([]bool, len(b.Records)-len(b.settled))...)
	}
	if !bulk.Errors {
		for _, i := range sent {
			b.settled[i] = true
		}
		return nil
	}
	if len(bulk.Items) != len(sent) {
		return fmt.Errorf("bulk answer has %d items for %d documents", len(bulk.Items), len(sent))
	}
	retry, sample := 0, ""
	for k, item := range bulk.Items {
		for _, result := range item {
			switch st := result.Status; {
			case st < 300 || st == 409:
				b.settled[sent[k]] = true
			case st == 429 || st >= 500:
				retry++
			default:
				b.settled[sent[k]] = true
				b.dropped++
				if sample == "" {
					sample = fmt.Sprintf("status %d: %s", st, result.Error)
				}
			}
		}
	}
	if retry > 0 {
		// The next attempt sends only what is left.
		b.bodyReady = false
		return &bulkItemsError{retry: retry, sent: len(sent)}
	}
	if sample != "" && b.dropped == len(b.Records) {
		return &RejectedError{Status: 400, Sample: sample}
	}
	return nil
}

// bulkItemsError says that some documents of a bulk request were refused
// with 429 or 5xx and are to be sent again.
type bulkItemsError struct{ retry, sent int }

func (e *bulkItemsError) Error() string {
	return fmt.Sprintf("bulk: %d of %d documents to retry", e.retry, e.sent)
}

// Loki posts to the push API as JSON. Every record of a batch shares the
// same labels (the Pod's tags do not change while tailcar runs), so a batch
// is one stream, its entries in read order. The whole record is the line.
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
		b.Each(func(_ int, rec []byte, r Record) {
			if !first {
				raw = append(raw, ',')
			}
			first = false
			raw = append(raw, `["`...)
			raw = strconv.AppendInt(raw, r.Time, 10)
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
	_, err = s.post.post(ctx, s.target, "application/json", body, 0)
	return err
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
