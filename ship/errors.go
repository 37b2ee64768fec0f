package ship

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// StatusError is a backend's answer other than 2xx. Status decides what
// the Shipper does with the batch (see Action).
type StatusError struct {
	Status int
	// Sample is the start of the answer, secrets masked, for the log.
	Sample string
	// Location is a redirect's target, secrets masked.
	Location string
	// RetryAfter is the wait the backend asked for, 0 when none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("backend answered %d %s", e.Status, http.StatusText(e.Status))
	switch {
	case e.Location != "":
		msg += "; redirects are not followed (Location: " + e.Location + ")"
	case e.Sample != "":
		msg += ": " + e.Sample
	}
	return msg
}

// Action is what the Shipper does with a batch after a failed attempt.
type Action int

const (
	// Retry sends the same batch again after a backoff: the backend is
	// down or busy, or a person must fix credentials or the URL; the
	// records wait in the files meanwhile.
	Retry Action = iota
	// Split sends the batch in halves: it is too large for the backend.
	Split
	// Reject drops and counts the batch: retrying cannot make the backend
	// take it, and blocking on it forever is worse.
	Reject
)

// ActionOf decides what a send error means, as the contract's "Delivery
// answers" say.
func ActionOf(err error) Action {
	var st *StatusError
	if !errors.As(err, &st) {
		return Retry // network errors, timeouts, unreadable answers
	}
	switch s := st.Status; {
	case s >= 300 && s < 400, s == 401, s == 403, s == 404, s == 407, s == 408, s == 429, s >= 500:
		return Retry
	case s == 413:
		return Split
	}
	return Reject
}

// ErrorClasses are the values ErrorClass returns, for metrics.
var ErrorClasses = []string{"network", "timeout", "http_3xx", "http_auth", "http_404", "http_408",
	"http_413", "http_429", "http_5xx", "http_4xx", "bulk_items"}

// ErrorClass names the kind of a send error for metrics: network,
// timeout, http_3xx (a redirect, not followed), http_auth (401, 403,
// 407), http_404, http_408, http_413, http_429, http_5xx, http_4xx (any
// other, the batch dropped) or bulk_items (some documents of a bulk
// request to retry).
func ErrorClass(err error) string {
	var st *StatusError
	var items *bulkItemsError
	switch {
	case errors.As(err, &st):
		switch s := st.Status; {
		case s >= 300 && s < 400:
			return "http_3xx"
		case s == 401 || s == 403 || s == 407:
			return "http_auth"
		case s == 404, s == 408, s == 413, s == 429:
			return fmt.Sprintf("http_%d", s)
		case s >= 500:
			return "http_5xx"
		}
		return "http_4xx"
	case errors.As(err, &items):
		return "bulk_items"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "network"
}

// bulkItemsError says that some documents of a bulk request were refused
// with 429 or 5xx, or not answered for, and are to be sent again.
type bulkItemsError struct{ retry, sent int }

func (e *bulkItemsError) Error() string {
	return fmt.Sprintf("bulk: %d of %d documents to retry", e.retry, e.sent)
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
