package ship

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

var _ Sink = (*OTLP)(nil)

// OTLP posts OTLP/HTTP protobuf: an ExportLogsServiceRequest with one
// ResourceLogs per resource among the batch's records. The records come
// encoded as LogRecords (enrich.OTLPEncoder) and their resources as
// Meta.Resource, so a batch is framed here, not encoded again.
type OTLP struct {
	target string
	post   *poster
	scope  []byte // the InstrumentationScope, encoded once
	// Buffers kept between batches; one goroutine sends.
	raw    []byte
	groups []otlpGroup
	recs   [][]byte
}

// otlpGroup is one resource's share of a request.
type otlpGroup struct {
	records, size, next int // size: of its log_records fields
}

// Field numbers, from opentelemetry/proto/collector/logs/v1 and
// opentelemetry/proto/logs/v1.
const (
	requestResourceLogs   protowire.Number = 1
	resourceLogsResource  protowire.Number = 1
	resourceLogsScopeLogs protowire.Number = 2
	scopeLogsScope        protowire.Number = 1
	scopeLogsRecords      protowire.Number = 2
	scopeName             protowire.Number = 1
	scopeVersion          protowire.Number = 2

	responsePartialSuccess protowire.Number = 1
	partialRejected        protowire.Number = 1
	partialMessage         protowire.Number = 2

	statusMessage protowire.Number = 2 // google.rpc.Status
)

// maxOTLPAnswer bounds what is read of a success answer: a partial
// success is a count and a message.
const maxOTLPAnswer = 64 << 10

// NewOTLP returns the otlp sink. version names tailcar in the scope.
func NewOTLP(ep Endpoint, version string) (*OTLP, error) {
	p, err := newPoster(ep)
	if err != nil {
		return nil, err
	}
	p.describe = describeStatus
	var scope []byte
	scope = protowire.AppendTag(scope, scopeName, protowire.BytesType)
	scope = protowire.AppendString(scope, "tailcar")
	if version != "" {
		scope = protowire.AppendTag(scope, scopeVersion, protowire.BytesType)
		scope = protowire.AppendString(scope, version)
	}
	return &OTLP{target: otlpTarget(ep.URL), post: p, scope: scope}, nil
}

// otlpTarget is <url>/v1/logs, or the URL as it is when its path already
// ends so; the query is kept either way.
func otlpTarget(u *url.URL) string {
	if strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/v1/logs") {
		return u.String()
	}
	return joinPath(u, "/v1/logs")
}

// Send posts the records not yet settled. A partial success counts the
// records it refused as dropped; the OTLP answer does not say which.
func (s *OTLP) Send(ctx context.Context, b *Batch) error {
	body, err := b.Body(func(dst []byte, b *Batch) ([]byte, error) {
		raw := s.appendRequest(s.raw[:0], b)
		body, err := s.post.compress.Append(dst, raw)
		s.raw = b.reuse(raw)
		return body, err
	})
	if err != nil {
		return err
	}
	var rejected int64
	var message string
	err = s.post.post(ctx, s.target, "application/x-protobuf", body, maxOTLPAnswer, func(r io.Reader) error {
		answer, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		rejected, message = readAnswer(answer)
		return nil
	})
	if err != nil {
		return err
	}
	if rejected > 0 {
		if message == "" {
			message = "no reason given"
		}
		b.RejectSome(int(min(rejected, int64(b.unsent()))), s.post.mask(truncateString(message, maxSample)))
	}
	return nil
}

// appendRequest appends the ExportLogsServiceRequest for the unsent
// records of b, grouped by resource, each group in read order.
func (s *OTLP) appendRequest(dst []byte, b *Batch) []byte {
	resources := b.Groups
	if len(resources) == 0 {
		resources = [][]byte{nil} // records without a resource: one, empty
	}
	s.groups = append(s.groups[:0], make([]otlpGroup, len(resources))...)
	total := 0
	b.Unsent(func(_ int, rec []byte, r Record) {
		g := &s.groups[r.Group]
		g.records++
		g.size += protowire.SizeTag(scopeLogsRecords) + protowire.SizeBytes(len(rec))
		total++
	})
	// Place the records by group (a counting sort), so that thousands of
	// resources in a node's batch cost two passes, not one per resource.
	next := 0
	for i := range s.groups {
		s.groups[i].next = next
		next += s.groups[i].records
	}
	s.recs = append(s.recs[:0], make([][]byte, total)...)
	b.Unsent(func(_ int, rec []byte, r Record) {
		g := &s.groups[r.Group]
		s.recs[g.next] = rec
		g.next++
	})
	start := 0
	for i, g := range s.groups {
		if g.records == 0 {
			continue
		}
		scopeLogs := protowire.SizeTag(scopeLogsScope) + protowire.SizeBytes(len(s.scope)) + g.size
		resourceLogs := protowire.SizeTag(resourceLogsResource) + protowire.SizeBytes(len(resources[i])) +
			protowire.SizeTag(resourceLogsScopeLogs) + protowire.SizeBytes(scopeLogs)
		dst = protowire.AppendTag(dst, requestResourceLogs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(resourceLogs))
		dst = protowire.AppendTag(dst, resourceLogsResource, protowire.BytesType)
		dst = protowire.AppendBytes(dst, resources[i])
		dst = protowire.AppendTag(dst, resourceLogsScopeLogs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(scopeLogs))
		dst = protowire.AppendTag(dst, scopeLogsScope, protowire.BytesType)
		dst = protowire.AppendBytes(dst, s.scope)
		for _, rec := range s.recs[start : start+g.records] {
			dst = protowire.AppendTag(dst, scopeLogsRecords, protowire.BytesType)
			dst = protowire.AppendBytes(dst, rec)
		}
		start += g.records
	}
	clear(s.recs) // the batch's bytes are not ours to keep
	return dst
}

// errMalformedAnswer is a success answer that is not an
// ExportLogsServiceResponse.
var errMalformedAnswer = errors.New("the answer is not an OTLP ExportLogsServiceResponse")

// readAnswer reads a 2xx answer's partial success, in protobuf or, from a
// backend that answers JSON whatever was asked, in OTLP JSON. An answer
// that is neither counts as a full success: the status said the records
// were taken, and sending them again would duplicate every one.
func readAnswer(answer []byte) (rejected int64, message string) {
	trimmed := bytes.TrimSpace(answer)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var r struct {
			PartialSuccess struct {
				RejectedLogRecords json.RawMessage `json:"rejectedLogRecords"` // int64: a string or a number
				ErrorMessage       string          `json:"errorMessage"`
			} `json:"partialSuccess"`
		}
		if json.Unmarshal(trimmed, &r) != nil {
			return 0, ""
		}
		n, _ := strconv.ParseInt(strings.Trim(string(r.PartialSuccess.RejectedLogRecords), `"`), 10, 64)
		return max(n, 0), r.PartialSuccess.ErrorMessage
	}
	rejected, message, err := readPartialSuccess(answer)
	if err != nil {
		return 0, ""
	}
	return rejected, message
}

// readPartialSuccess reads an ExportLogsServiceResponse: how many records
// the backend refused, and why. An empty answer is a full success.
func readPartialSuccess(answer []byte) (rejected int64, message string, err error) {
	var inner error
	err = eachField(answer, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) {
		if num != responsePartialSuccess || typ != protowire.BytesType {
			return
		}
		inner = eachField(data, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) {
			switch {
			case num == partialRejected && typ == protowire.VarintType:
				rejected = int64(v)
			case num == partialMessage && typ == protowire.BytesType:
				message = string(data)
			}
		})
	})
	if err == nil {
		err = inner
	}
	if err == nil && rejected < 0 {
		err = fmt.Errorf("%w: a negative count of rejected records", errMalformedAnswer)
	}
	if err != nil {
		return 0, "", err
	}
	return rejected, message, nil
}

// describeStatus reads the message of a google.rpc.Status, which OTLP/HTTP
// backends answer errors with when the request was protobuf.
func describeStatus(contentType string, answer []byte) (string, bool) {
	if !strings.HasPrefix(contentType, "application/x-protobuf") && !strings.HasPrefix(contentType, "application/protobuf") {
		return "", false
	}
	var message string
	found := false
	err := eachField(answer, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) {
		if num == statusMessage && typ == protowire.BytesType {
			message, found = string(data), true
		}
	})
	return message, err == nil && found
}

// eachField calls fn with every field of a protobuf message: its number,
// its wire type, and its value (a varint's in v, a length-delimited
// field's in data). It fails on a message that does not parse.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, data []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformedAnswer
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errMalformedAnswer
		}
		b = b[n:]
		fn(num, typ, v, data)
	}
	return nil
}
