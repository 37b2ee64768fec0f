package tailer

import (
	"context"
	"time"
)

// Line is one record read from a file.
type Line struct {
	// Source names the file generation the record came from. It survives
	// restarts through the positions file.
	Source uint64
	// Path is the name the file is followed under.
	Path string
	// End is where the record ends in the file: with Source, it names the
	// record, the same each time it is read.
	End int64
	// Ack is the offset to acknowledge once the record is delivered:
	// reading resumes there after a restart. It is End, or earlier while
	// another record of the same file, begun before this one, is still
	// being assembled (see records.go).
	Ack int64
	// Text is the record without its newline. It is valid only until
	// Handle returns.
	Text      []byte
	Truncated bool
	// Time is the container runtime's time of the record (cri, docker);
	// zero for plain lines.
	Time time.Time
	// Stream is "stdout" or "stderr" for container logs, empty otherwise.
	Stream string
	// Malformed says the line did not have the container format it was
	// read with; it is shipped as a plain line.
	Malformed bool
	// Since is when tailcar learned the record was there (its file event,
	// or the read when no event said so): a record waits for its batch
	// from then, so letting events settle adds nothing to its latency.
	Since time.Time
	// Read is when tailcar read the record from its file.
	Read time.Time
}

// Handler takes the records read, in file order. Handle may block, which
// pauses reading: that is how a slow backend holds tailcar back.
// CaughtUp says that every line known of has been handed over and the
// follower is about to wait: what was handed over can leave in this
// wake-up instead of on a timer of its own.
type Handler interface {
	Handle(ctx context.Context, l Line) error
	CaughtUp()
}

// Pulse shows a liveness check that the follow loop is not wedged: Busy
// when it starts a step, Waiting when it blocks on file events.
type Pulse interface {
	Busy()
	Waiting()
}

type noPulse struct{}

func (noPulse) Busy()    {}
func (noPulse) Waiting() {}
