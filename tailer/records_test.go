package tailer

import (
	"testing"
	"time"
)

// Ensure the buffer that joins chunks (CRI P…F, docker's split lines) or
// multiline records does not stay the size of a huge record once shorter
// ones follow: TAILCAR_MAX_RECORD_BYTES may be raised to tens of MiB, and
// a 64Mi container cannot keep one such buffer per stream.
func TestPending_LetsAHugeRecordGo(t *testing.T) {
	const huge = 16 << 20
	var p pending
	join := func(size int) {
		p.begin(0, time.Time{})
		for size > 0 {
			chunk := make([]byte, min(size, 16<<10)) // the kubelet's chunks are 16 KiB
			p.add(chunk, huge, false)
			size -= len(chunk)
		}
		p.take()
	}
	join(huge)
	if cap(p.text) < huge {
		t.Fatalf("joined %d bytes in a buffer of %d", huge, cap(p.text))
	}
	join(200)
	join(200)
	p.begin(0, time.Time{})
	if cap(p.text) > 4*200 {
		t.Errorf("after two records of 200 bytes, the buffer still holds %d bytes", cap(p.text))
	}
	// Records of a steady size keep their buffer.
	join(300 << 10)
	join(300 << 10)
	before := cap(p.text)
	join(300 << 10)
	if cap(p.text) != before {
		t.Errorf("a record the size of the one before it got a new buffer (%d bytes, then %d)", before, cap(p.text))
	}
}
