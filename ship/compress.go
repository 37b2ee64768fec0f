package ship

import (
	"fmt"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression names accepted by NewCompressor.
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// Compressor compresses request bodies, reusing its encoder: a fresh gzip
// or zstd encoder per batch would allocate hundreds of KiB each time.
type Compressor struct {
	kind string
	gz   *gzip.Writer
	zs   *zstd.Encoder
	out  appendWriter
}

// NewCompressor returns a Compressor for none, gzip or zstd.
func NewCompressor(kind string) (*Compressor, error) {
	c := &Compressor{kind: kind}
	switch kind {
	case CompressionNone, "":
		c.kind = CompressionNone
	case CompressionGzip:
		// BestSpeed: log lines compress well at any level, and CPU in every
		// Pod of a fleet costs more than a few percent of bytes on the wire.
		gz, err := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		c.gz = gz
	case CompressionZstd:
		// One goroutine and a small window: the defaults take 8-17 MiB per
		// encoder, more than all of tailcar's other memory together.
		zs, err := zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(1<<20),
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		c.zs = zs
	default:
		return nil, fmt.Errorf("unknown compression %q", kind)
	}
	return c, nil
}

// ContentEncoding is the HTTP Content-Encoding for the compressed bodies,
// empty for none.
func (c *Compressor) ContentEncoding() string {
	if c.kind == CompressionNone {
		return ""
	}
	return c.kind
}

// Append appends src, compressed, to dst.
func (c *Compressor) Append(dst, src []byte) ([]byte, error) {
	switch c.kind {
	case CompressionGzip:
		c.out.b = dst
		c.gz.Reset(&c.out)
		if _, err := c.gz.Write(src); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := c.gz.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		out := c.out.b
		c.out.b = nil
		return out, nil
	case CompressionZstd:
		return c.zs.EncodeAll(src, dst), nil
	default:
		return append(dst, src...), nil
	}
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
