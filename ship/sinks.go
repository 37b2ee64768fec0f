package ship

import (
	"context"
	"fmt"
	"io"
)

var (
	_ Sink = (*Writer)(nil)
	_ Sink = (*HTTP)(nil)
)

// Writer is the stdout sink: one JSON object per line, nothing else.
type Writer struct {
	w io.Writer
}

// NewWriter returns a sink that writes records to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Send writes the batch's records. A batch is written whole or retried
// whole, so a short write would repeat lines; stdout is a pipe, where a
// failed write is rare and fatal in practice.
func (s *Writer) Send(_ context.Context, b *Batch) error {
	if _, err := s.w.Write(b.Data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

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
		return s.post.compress.Append(dst, b.Data)
	})
	if err != nil {
		return err
	}
	_, err = s.post.post(ctx, s.target, "application/x-ndjson", body, 0)
	return err
}
