package ship

import (
	"context"
)

var _ Sink = (*HTTP)(nil)

// HTTP posts newline-delimited JSON to one URL.
type HTTP struct {
	target string
	post   *poster
}

// NewHTTP returns the http sink.
func NewHTTP(ep Endpoint) (*HTTP, error) {
	p, err := newPoster(ep)
	if err != nil {
		return nil, err
	}
	return &HTTP{target: ep.URL.String(), post: p}, nil
}

// Send posts the batch as NDJSON.
func (s *HTTP) Send(ctx context.Context, b *Batch) error {
	body, err := b.Body(func(dst []byte, b *Batch) ([]byte, error) {
		return s.post.compress.Append(dst, b.UnsentData())
	})
	if err != nil {
		return err
	}
	return s.post.post(ctx, s.target, "application/x-ndjson", body, 0, nil)
}
