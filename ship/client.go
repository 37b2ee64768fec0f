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
	"strings"
	"time"
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

// TLSFileError names which of the PEM files a TLS setting could not use.
type TLSFileError struct {
	Which string // "ca", "cert" or "key"
	Err   error
}

func (e *TLSFileError) Error() string { return e.Err.Error() }
func (e *TLSFileError) Unwrap() error { return e.Err }

// TLSConfig builds the client TLS settings from PEM files. Verification
// stays on unless insecure is set.
func TLSConfig(caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &TLSFileError{"ca", fmt.Errorf("read CA bundle: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &TLSFileError{"ca", fmt.Errorf("no PEM certificate in %s", caFile)}
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile != "":
		return nil, &TLSFileError{"cert", errors.New("a client key needs its certificate too")}
	case certFile != "" && keyFile == "":
		return nil, &TLSFileError{"key", errors.New("a client certificate needs its key too")}
	case certFile != "":
		if _, err := os.Stat(keyFile); err != nil {
			return nil, &TLSFileError{"key", fmt.Errorf("read client key: %w", err)}
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, &TLSFileError{"cert", fmt.Errorf("load client certificate and key: %w", err)}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Bounds on what is read of an answer, so that a backend cannot take
// tailcar past its memory envelope, however long its answer.
const (
	// maxSample is how much of an error answer is kept for the log.
	maxSample = 512
	// maxErrorBody is how much of an error answer is read to decode it
	// (an OTLP google.rpc.Status).
	maxErrorBody = 64 << 10
	// maxDiscard is how much of an unread answer is drained so the
	// connection can be reused; past it the connection is dropped.
	maxDiscard = 64 << 10
)

// poster posts bodies to one backend and classifies its answers.
type poster struct {
	client   *http.Client
	header   http.Header
	compress *Compressor
	// secrets are masked wherever an answer or a URL is logged: a backend
	// may echo the request's Authorization header in its error.
	secrets []string
	// describe, when set, reads an error answer in the backend's own
	// encoding (OTLP's google.rpc.Status) into the text to log.
	describe func(contentType string, answer []byte) (string, bool)
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
	var secrets []string
	for k, v := range ep.Headers {
		h.Set(k, v)
		secrets = append(secrets, v) // an API key header, say
	}
	switch {
	case ep.APIKey != "":
		h.Set("Authorization", "ApiKey "+ep.APIKey)
		secrets = append(secrets, ep.APIKey)
	case ep.Token != "":
		h.Set("Authorization", "Bearer "+ep.Token)
		secrets = append(secrets, ep.Token)
	case ep.User != "" || ep.Password != "":
		basic := base64.StdEncoding.EncodeToString([]byte(ep.User + ":" + ep.Password))
		h.Set("Authorization", "Basic "+basic)
		secrets = append(secrets, basic, ep.Password)
	}
	if ep.Tenant != "" {
		h.Set("X-Scope-OrgID", ep.Tenant)
	}
	if enc := comp.ContentEncoding(); enc != "" {
		h.Set("Content-Encoding", enc)
	}
	client := &http.Client{
		Transport: transport,
		// Never follow a redirect: it can turn the POST into a GET that a
		// 200 then seems to accept, or carry the credentials to another
		// host. The 3xx is answered as an error (see ActionOf).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &poster{client: client, header: h, compress: comp, secrets: secrets}, nil
}

// post sends body. On a 2xx answer, read (when not nil) gets the answer,
// of which it may read at most limit bytes; any other answer is a
// *StatusError. Network errors are returned as they are.
func (p *poster) post(ctx context.Context, target, contentType string, body []byte, limit int64, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err) // retried; the URL was validated at start
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", errors.New(p.mask(err.Error())))
	}
	defer func() {
		// Drain a little so the connection can be reused; a longer answer
		// costs a new connection, not memory.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDiscard))
		resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if read == nil {
			return nil
		}
		if err := read(io.LimitReader(resp.Body, limit)); err != nil {
			return fmt.Errorf("read answer: %w", err)
		}
		return nil
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return p.statusError(resp, answer)
}

// statusError describes a non-2xx answer, secrets masked.
func (p *poster) statusError(resp *http.Response, answer []byte) *StatusError {
	if p.describe != nil {
		if text, ok := p.describe(resp.Header.Get("Content-Type"), answer); ok {
			answer = []byte(text)
		}
	}
	st := &StatusError{Status: resp.StatusCode, Sample: p.sample(answer)}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		st.Location = p.mask(redactURL(resp.Header.Get("Location")))
	}
	if after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		st.RetryAfter = after
	}
	return st
}

// sample is the start of an answer, as printable text with secrets masked.
func (p *poster) sample(answer []byte) string {
	s := strings.ToValidUTF8(string(bytes.TrimSpace(answer)), "\uFFFD")
	return p.mask(truncateString(s, maxSample))
}

// mask replaces every secret in s. Secrets shorter than four bytes are
// not masked: they would blank out common words, and are no secret.
func (p *poster) mask(s string) string {
	for _, secret := range p.secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// RedactURL hides a URL's user info, name and password alike (a token
// is often given as the name), for logs and error lines. It works on text
// that does not parse as a URL too.
func RedactURL(s string) string { return redactURL(s) }

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		if u.User != nil {
			u.User = url.User("xxxxx")
		}
		return u.String()
	}
	// Unparseable: hide whatever lies between the scheme and an '@'.
	scheme := strings.Index(s, "://")
	at := strings.LastIndex(s, "@")
	if scheme >= 0 && at > scheme+3 {
		return s[:scheme+3] + "xxxxx" + s[at:]
	}
	return s
}
