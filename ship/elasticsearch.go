package ship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

var _ Sink = (*Elasticsearch)(nil)

// BulkPath is where the elasticsearch sink posts, under the sink URL.
const BulkPath = "/_bulk"

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
// its own offset, so a batch sent again after a lost answer creates no
// duplicate: the repeat gets 409, which counts as delivered.
type Elasticsearch struct {
	target string
	index  []byte // the index name as a JSON string
	post   *poster
	// bulk is the uncompressed body, kept between sends so that building
	// one does not allocate a batch's worth each time; only the sender
	// uses it.
	bulk []byte
}

// Bounds on reading a bulk answer. It lists every document, so it is read
// as a stream, one item at a time: its length costs time, not memory.
const (
	maxBulkAnswer = 1 << 30
	maxBulkItem   = 1 << 20
)

// NewElasticsearch returns the elasticsearch sink writing to index.
func NewElasticsearch(ep Endpoint, index string) (*Elasticsearch, error) {
	p, err := newPoster(ep)
	if err != nil {
		return nil, err
	}
	name, _ := json.Marshal(index)
	return &Elasticsearch{target: joinPath(ep.URL, BulkPath), index: name, post: p}, nil
}

// Send posts the records not yet settled. Items refused with 429 or 5xx,
// or not answered for, make Send fail so that the shipper retries them,
// and only them. A parsed record refused with 400 (a mapping conflict:
// its field was a number in earlier documents and is text here, or an
// object, or the index's field limit is reached) is sent again at once
// as its line, unparsed, under the same _id: a line is never lost to its
// fields. Items refused otherwise, or refused again unparsed, are
// dropped and counted.
func (s *Elasticsearch) Send(ctx context.Context, b *Batch) error {
	for {
		unparsed, err := s.send(ctx, b)
		if err != nil || unparsed == 0 {
			return err
		}
		// Each record has one unparsed form: the next round ends it.
	}
}

// send posts the records not yet settled once, and reports how many were
// refused for their parsed fields and are to go again unparsed.
func (s *Elasticsearch) send(ctx context.Context, b *Batch) (unparsed int, err error) {
	// The documents sent, in order: the bulk answer has one item for each.
	var sent []int
	b.Unsent(func(i int, _ []byte, _ Record) { sent = append(sent, i) })
	body, err := b.Body(func(dst []byte, b *Batch) ([]byte, error) {
		raw := s.bulk[:0]
		b.Unsent(func(i int, rec []byte, r Record) {
			raw = append(raw, `{"create":{"_index":`...)
			raw = append(raw, s.index...)
			raw = append(raw, `,"_id":"`...)
			raw = strconv.AppendUint(raw, r.Ack.Source, 16)
			raw = append(raw, '-')
			raw = strconv.AppendInt(raw, r.Pos, 10)
			raw = append(raw, "\"}}\n"...)
			raw = append(raw, rec...)
			raw = append(raw, '\n')
		})
		body, err := s.post.compress.Append(dst, raw)
		s.bulk = b.reuse(raw)
		return body, err
	})
	if err != nil {
		return 0, err
	}
	var results bulkResults
	err = s.post.post(ctx, s.target, "application/x-ndjson", body, maxBulkAnswer, func(r io.Reader) error {
		return results.read(r, len(sent))
	})
	if err != nil {
		return 0, err
	}
	retry := 0
	for k, i := range sent {
		if k >= len(results.status) {
			if results.allOK {
				b.Accept(i)
			} else {
				retry++ // not answered for
			}
			continue
		}
		switch st := results.status[k]; {
		case st == 0:
			retry++ // an item without a status is no answer
		case st < 300 || st == 409:
			b.Accept(i)
		case st == 429 || st >= 500:
			retry++
		default:
			why := fmt.Sprintf("status %d: %s", st, s.post.sample(results.firstError))
			if st == 400 && b.Unparse(i, why) {
				unparsed++
			} else {
				b.Drop(i, why)
			}
		}
	}
	if retry > 0 || unparsed > 0 {
		// The next attempt sends only what is left.
		b.Rebuild()
	}
	if retry > 0 {
		return unparsed, &bulkItemsError{retry: retry, sent: len(sent)}
	}
	return unparsed, nil
}

// bulkResults is what tailcar reads of a _bulk answer: whether it says
// every item succeeded, each item's status (as many as documents were
// sent; more would be no answer of ours), and the first failure's error.
type bulkResults struct {
	allOK      bool
	status     []int
	firstError []byte
}

// read decodes a bulk answer for want documents as a stream. Answers that
// say "errors": false before their items are not read further.
func (br *bulkResults) read(r io.Reader, want int) error {
	bounded := &itemBound{r: r}
	dec := json.NewDecoder(bounded)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("bulk answer: not a JSON object")
	}
	sawErrors := false
	for dec.More() {
		bounded.reset()
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("bulk answer: %w", err)
		}
		switch tok {
		case "errors":
			var failed bool
			if err := dec.Decode(&failed); err != nil {
				return fmt.Errorf("bulk answer: errors: %w", err)
			}
			if sawErrors = true; !failed {
				br.allOK = true
				if len(br.status) == 0 {
					return nil // every item succeeded; no need to read them
				}
			}
		case "items":
			if err := br.readItems(dec, bounded, want); err != nil {
				return err
			}
		default:
			if err := skipValue(dec); err != nil {
				return fmt.Errorf("bulk answer: %w", err)
			}
		}
	}
	if !sawErrors && len(br.status) != want {
		return errors.New("bulk answer: neither an errors flag nor an item per document")
	}
	return nil
}

func (br *bulkResults) readItems(dec *json.Decoder, bounded *itemBound, want int) error {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return errors.New("bulk answer: items is not an array")
	}
	br.status = make([]int, 0, want)
	for n := 0; dec.More(); n++ {
		bounded.reset()
		if n >= want {
			if err := skipValue(dec); err != nil {
				return fmt.Errorf("bulk answer: item %d: %w", n, err)
			}
			continue
		}
		var item map[string]struct {
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		}
		if err := dec.Decode(&item); err != nil {
			return fmt.Errorf("bulk answer: item %d: %w", n, err)
		}
		st := 0
		for _, result := range item { // one action per item
			st = result.Status
			if st >= 300 && st != 409 && st != 429 && st < 500 && br.firstError == nil {
				br.firstError = append([]byte(nil), result.Error[:min(len(result.Error), maxSample)]...)
			}
		}
		br.status = append(br.status, st)
	}
	_, err := dec.Token() // ]
	return err
}

// skipValue reads past one JSON value: it is scanned in the decoder's
// buffer (bounded by itemBound), and nothing is built from it.
func skipValue(dec *json.Decoder) error {
	var skip ignored
	return dec.Decode(&skip)
}

// ignored takes any JSON value and keeps nothing of it.
type ignored struct{}

func (*ignored) UnmarshalJSON([]byte) error { return nil }

// itemBound fails a read once one item of an answer has taken more than
// maxBulkItem bytes, so that no single value is held whole in memory.
type itemBound struct {
	r    io.Reader
	used int
}

func (b *itemBound) reset() { b.used = 0 }

func (b *itemBound) Read(p []byte) (int, error) {
	if b.used > maxBulkItem {
		return 0, fmt.Errorf("a value of the answer is over %d bytes", maxBulkItem)
	}
	n, err := b.r.Read(p)
	b.used += n
	return n, err
}
