package ship

import (
	"context"
	"fmt"
	"io"
)

var _ Sink = (*Writer)(nil)

// Writer is the stdout sink: one JSON object per line, nothing else.
type Writer struct {
	w io.Writer
}

// NewWriter returns a sink that writes records to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Send writes the batch's records. A batch is written whole or retried
// whole, so a short write would repeat lines; stdout is a pipe, where a
// failed write is rare and fatal in practice. A write that blocks (nobody
// reads the pipe) cannot be abandoned: the Shipper counts it as a stuck
// step (Config.LocalSink), and the drain timeout bounds the exit.
func (s *Writer) Send(_ context.Context, b *Batch) error {
	if _, err := s.w.Write(b.Data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
