package ship

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression names accepted by NewCompressor.
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// Endpoint is what every network sink shares: where to post, how to
// authenticate, and how to compress.
type Endpoint struct {
	URL         *url.URL
	Headers     map[string]string // extra headers, sent on every request
	User        string            // basic auth user; with Password
	Password    string
	Token       string // sent as "Authorization: Bearer <token>"
	APIKey      string // sent as "Authorization: ApiKey <key>" (Elasticsearch)
	Tenant      string // sent as X-Scope-OrgID (Loki)
	Compression string
	TLS         *tls.Config
}

// TLSConfig builds the client TLS settings from PEM files. Verification
// stays on unless insecure is set.
func TLSConfig(caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in %s", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a client certificate needs both a certificate and a key")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// poster posts bodies to one backend and classifies its answers.
type poster struct {
	client   *http.Client
	header   http.Header
	compress *Compressor
}

func newPoster(ep Endpoint) (*poster, error) {
	comp, err := NewCompressor(ep.Compression)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = ep.TLS
	transport.MaxIdleConnsPerHost = 2
	h := http.Header{}
	for k, v := range ep.Headers {
		h.Set(k, v)
	}
	switch {
	case ep.APIKey != "":
		h.Set("Authorization", "ApiKey "+ep.APIKey)
	case ep.Token != "":
		h.Set("Authorization", "Bearer "+ep.Token)
	case ep.User != "" || ep.Password != "":
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(ep.User+":"+ep.Password)))
	}
	if ep.Tenant != "" {
		h.Set("X-Scope-OrgID", ep.Tenant)
	}
	if enc := comp.ContentEncoding(); enc != "" {
		h.Set("Content-Encoding", enc)
	}
	return &poster{client: &http.Client{Transport: transport}, header: h, compress: comp}, nil
}

// maxSample is how much of an error answer is kept for the log.
const maxSample = 512

// post sends body and returns the response body of a 2xx answer (read up
// to limit bytes), or an error classified for the retry loop.
func (p *poster) post(ctx context.Context, target, contentType string, body []byte, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, &RejectedError{Status: 0, Sample: err.Error()}
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		answer, err := io.ReadAll(io.LimitReader(resp.Body, limit))
		if err != nil {
			return nil, fmt.Errorf("read answer: %w", err)
		}
		// Drain what is left (bounded) so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return answer, nil
	}
	sample, _ := io.ReadAll(io.LimitReader(resp.Body, maxSample))
	return nil, classify(resp, sample)
}

// classify turns a non-2xx answer into a retryable error or a rejection.
// 408, 429 and 5xx are a backend's way of saying "later"; other answers
// will not change by sending the same body again.
func classify(resp *http.Response, sample []byte) error {
	status := resp.StatusCode
	err := &StatusError{Status: status, Answer: string(bytes.TrimSpace(sample))}
	if status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500 {
		if after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &RetryAfterError{After: after, Err: err}
		}
		return err
	}
	return &RejectedError{Status: status, Sample: string(bytes.TrimSpace(sample))}
}

// StatusError is a backend's answer asking to try again later: 408, 429
// or a 5xx.
type StatusError struct {
	Status int
	Answer string // the start of the answer, for the log
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("backend answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Answer)
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

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
