package ship

import (
	"slices"
	"time"
)

// Batch is a run of encoded records with what each one acknowledges.
// Sinks read it and report per record through Accept, Drop and Rebuild;
// everything else about it belongs to the Shipper.
type Batch struct {
	// Data holds the records, each followed by a newline (so that NDJSON
	// sinks send it as it is); Records says where each ends.
	Data []byte
	// Records has one entry per record, in order, including acks of
	// filtered lines, which have no data and are never sent.
	Records []Record
	// seeds holds the records' Meta.UnparsedSeed; unparsed the unparsed
	// forms built from them for records the backend refused for their
	// fields (Unparse), which unparsedAt locates by record, and unparse
	// builds them (Config.Unparse). Refusals are rare: the spans live in
	// a map rather than in every Record.
	seeds, unparsed []byte
	unparsedAt      map[int][2]int
	unparse         func(dst, rec, seed []byte) ([]byte, bool)
	// Groups are the group encodings that Record.Group indexes, for a
	// sink that sends records grouped by their tags: OTLP resources, Loki
	// stream labels.
	Groups [][]byte
	// groupOf finds a resource's index in Groups.
	groupOf map[string]uint32

	// due is when the batch must leave.
	due time.Time
	// kept is how large a buffer built for the batch may stay between
	// uses, its own or a sink's: four times TAILCAR_BATCH_BYTES, room for
	// a full batch in any sink's encoding.
	kept int
	// state says, per record, what became of it.
	state []recordState
	// part is the range of records being sent, narrowed when a backend
	// answers 413 and the batch is sent in parts.
	partLo, partHi int
	// body caches what a sink built from the part (compressed, framed),
	// so that a retry sends the very same bytes without building them again.
	body      []byte
	bodyReady bool
	// scratch holds the unsent records when they are not all of Data.
	scratch []byte
	// dropNote says why the first record a sink dropped was refused;
	// unparsedNote why the first one sent unparsed was refused parsed.
	dropNote, unparsedNote string
	// partial counts records the backend said it refused without saying
	// which (an OTLP partial success): accepted, and counted as dropped.
	partial     int
	partialNote string
}

// Record locates one record in Batch.Data and says what it acknowledges.
type Record struct {
	stop int // Data[previous stop:stop] is the record and its newline
	// seeds[previous seedStop:seedStop] is the record's Meta.UnparsedSeed,
	// empty when it has none.
	seedStop int
	// Ack is what delivering the record acknowledges.
	Ack Ack
	// Pos is the record's own end in its file: with Ack.Source, unique
	// to the record, and the same every time it is read (Elasticsearch
	// builds document ids from it).
	Pos int64
	// Read and Event are the time tailcar read the record and the event's
	// own time (@timestamp), Unix nanoseconds.
	Read, Event int64
	// Group indexes Batch.Groups.
	Group uint32
	// Skip marks the ack of filtered lines: nothing to send.
	Skip bool
}

// recordState is what became of a record.
type recordState uint8

const (
	pending          recordState = iota
	pendingUnparsed              // to be sent without its parsed fields
	accepted                     // the backend has it
	acceptedUnparsed             // the backend has it, without its parsed fields
	dropPoison                   // refused on its own (a mapping error)
	dropLarge                    // too large for the backend even alone
	dropBatch                    // in a batch refused with a 4xx
)

// Meta is what the Shipper needs of a record besides its bytes.
type Meta struct {
	Ack Ack
	Pos int64
	// ReadAt is when the record was read; Event its own time.
	ReadAt, Event time.Time
	// Since is when the record was known to be there: the batch wait
	// counts from then.
	Since time.Time
	// UnparsedSeed, for a parsed record whose backend may refuse its
	// fields (an Elasticsearch mapping conflict), is what Config.Unparse
	// builds the record's unparsed form from, in two parts that the batch
	// joins as it copies them (a producer need not copy a long line to
	// join them); empty otherwise.
	UnparsedSeed [2][]byte
	// Resource is the encoded group the record belongs to (an OTLP
	// resource, Loki stream labels), for a sink that groups records by
	// it; nil for the others. Its bytes must not
	// change afterwards: batches keep them without a copy.
	Resource []byte
}

func (b *Batch) add(rec []byte, m Meta) {
	b.Data = append(b.Data, rec...)
	b.Data = append(b.Data, '\n')
	b.seeds = append(b.seeds, m.UnparsedSeed[0]...)
	b.seeds = append(b.seeds, m.UnparsedSeed[1]...)
	r := b.next()
	r.stop, r.seedStop, r.Ack, r.Pos = len(b.Data), len(b.seeds), m.Ack, m.Pos
	r.Read, r.Event, r.Group, r.Skip = m.ReadAt.UnixNano(), m.Event.UnixNano(), b.group(m.Resource), false
}

// next appends a record and returns it, to be written in place, every
// field: a reused slot holds a former batch's record. A literal appended,
// or assigned through the pointer, is built on the stack and copied into
// the slice, and that copy took two thirds of add's samples in perf
// (enrich.Fields.add says why).
func (b *Batch) next() *Record {
	n := len(b.Records)
	b.Records = slices.Grow(b.Records, 1)[:n+1]
	return &b.Records[n]
}

// group returns the index of resource in Groups, adding it when new.
func (b *Batch) group(resource []byte) uint32 {
	if resource == nil {
		return 0
	}
	if g, ok := b.groupOf[string(resource)]; ok {
		return g
	}
	if b.groupOf == nil {
		b.groupOf = make(map[string]uint32)
	}
	g := uint32(len(b.Groups))
	b.Groups = append(b.Groups, resource)
	b.groupOf[string(resource)] = g
	return g
}

// skip records the ack of a filtered line. Filtered lines in a row from
// one file share one entry, so dropping most lines costs no memory.
func (b *Batch) skip(ack Ack) {
	if n := len(b.Records); n > 0 && b.Records[n-1].Skip && b.Records[n-1].Ack.Source == ack.Source {
		b.Records[n-1].Ack = ack
		return
	}
	r := b.next()
	r.stop, r.seedStop, r.Ack, r.Pos = len(b.Data), len(b.seeds), ack, 0
	r.Read, r.Event, r.Group, r.Skip = 0, 0, 0, true
}

func (b *Batch) reset() {
	b.Data = b.reuse(b.Data)
	b.seeds, b.unparsed, b.scratch = b.reuse(b.seeds), b.reuse(b.unparsed), b.reuse(b.scratch)
	clear(b.unparsedAt)
	b.Records = b.Records[:0]
	b.Groups = b.Groups[:0]
	clear(b.groupOf)
	b.partial, b.partialNote = 0, ""
	b.state = b.state[:0]
	b.body = b.reuse(b.body)
	b.bodyReady = false
	b.dropNote, b.unparsedNote = "", ""
}

// keptBytes is the least a batch may keep of its buffers between uses.
const keptBytes = 256 << 10

// reuse returns buf emptied for the batch's next use, or nil when it has
// grown past what the batch keeps (kept): a batch that once held a huge
// record (TAILCAR_MAX_RECORD_BYTES raised) must not keep its size for the
// rest of the run. Batches of their usual size, full or not, keep theirs:
// letting go of a full batch's buffers after a smaller one raised peak
// RSS in W4-node from 25.6 to 31.6 MiB, the buffers being grown again.
func (b *Batch) reuse(buf []byte) []byte {
	if cap(buf) > max(b.kept, keptBytes) {
		return nil
	}
	return buf[:0]
}

// records counts the records with data.
func (b *Batch) records() int {
	n := 0
	for _, r := range b.Records {
		if !r.Skip {
			n++
		}
	}
	return n
}

// setPart narrows sending to records [lo, hi).
func (b *Batch) setPart(lo, hi int) {
	if len(b.state) < len(b.Records) {
		b.state = append(b.state, make([]recordState, len(b.Records)-len(b.state))...)
	}
	b.partLo, b.partHi = lo, hi
	b.bodyReady = false
}

// Unsent calls fn for every record of the part being sent that has data
// and that the backend has neither accepted nor refused, in order, with
// the record's bytes without its newline: its unparsed form once Unparse
// has chosen it.
func (b *Batch) Unsent(fn func(i int, rec []byte, r Record)) {
	for i := b.partLo; i < b.partHi; i++ {
		r := b.Records[i]
		switch {
		case r.Skip:
		case b.state[i] == pending:
			fn(i, b.data(i), r)
		case b.state[i] == pendingUnparsed:
			at := b.unparsedAt[i]
			fn(i, b.unparsed[at[0]:at[1]], r)
		}
	}
}

// data returns record i's bytes in Data, without its newline.
func (b *Batch) data(i int) []byte {
	start := 0
	if i > 0 {
		start = b.Records[i-1].stop
	}
	return b.Data[start : b.Records[i].stop-1]
}

// seed returns record i's Meta.UnparsedSeed, joined.
func (b *Batch) seed(i int) []byte {
	start := 0
	if i > 0 {
		start = b.Records[i-1].seedStop
	}
	return b.seeds[start:b.Records[i].seedStop]
}

// UnsentData returns the unsent records of the part being sent, each with
// its newline: Data itself when that is all of them (the usual case),
// a copy otherwise.
func (b *Batch) UnsentData() []byte {
	whole := b.partLo == 0 && b.partHi == len(b.Records)
	for i := 0; whole && i < len(b.Records); i++ {
		whole = b.state[i] == pending
	}
	if whole {
		return b.Data
	}
	b.scratch = b.scratch[:0]
	b.Unsent(func(_ int, rec []byte, _ Record) {
		b.scratch = append(b.scratch, rec...)
		b.scratch = append(b.scratch, '\n')
	})
	return b.scratch
}

// unsent counts what Unsent would visit.
func (b *Batch) unsent() int {
	n := 0
	b.Unsent(func(int, []byte, Record) { n++ })
	return n
}

// Body returns the request body for the part being sent, building it with
// build on first use and returning the same bytes on every retry.
func (b *Batch) Body(build func(dst []byte, b *Batch) ([]byte, error)) ([]byte, error) {
	if b.bodyReady {
		return b.body, nil
	}
	body, err := build(b.body[:0], b)
	if err != nil {
		return nil, err
	}
	b.body, b.bodyReady = body, true
	return body, nil
}

// Accept says the backend has record i.
func (b *Batch) Accept(i int) {
	if b.state[i] == pendingUnparsed {
		b.state[i] = acceptedUnparsed
		return
	}
	b.state[i] = accepted
}

// Unparse says the backend refused record i for its fields, and chooses
// its unparsed form for the next attempt. It reports false when the
// record has no other form (it was not parsed, or this was that form):
// then only Drop is left. why is logged for the first record unparsed.
func (b *Batch) Unparse(i int, why string) bool {
	seed := b.seed(i)
	if b.state[i] != pending || len(seed) == 0 || b.unparse == nil {
		return false
	}
	from := len(b.unparsed)
	form, ok := b.unparse(b.unparsed, b.data(i), seed)
	if !ok {
		return false
	}
	b.unparsed = form
	if b.unparsedAt == nil {
		b.unparsedAt = make(map[int][2]int)
	}
	b.unparsedAt[i] = [2]int{from, len(form)}
	b.state[i] = pendingUnparsed
	if b.unparsedNote == "" {
		b.unparsedNote = why
	}
	return true
}

// Drop says the backend refused record i on its own, and retrying cannot
// help (a mapping error): it is dropped and counted. why is logged for
// the first record dropped.
func (b *Batch) Drop(i int, why string) {
	b.state[i] = dropPoison
	if b.dropNote == "" {
		b.dropNote = why
	}
}

// RejectSome says the backend refused n of the records sent without
// saying which, and retrying cannot help (an OTLP partial success): the
// batch counts as delivered but for n records counted as dropped. why
// is logged for the first such answer.
func (b *Batch) RejectSome(n int, why string) {
	b.partial += n
	if b.partialNote == "" {
		b.partialNote = why
	}
}

// Rebuild says the body must be built again for the next attempt, because
// some records were settled and the rest are to be sent again.
func (b *Batch) Rebuild() { b.bodyReady = false }

// settleUnsent gives every unsent record of the part the same fate.
func (b *Batch) settleUnsent(s recordState) {
	b.Unsent(func(i int, _ []byte, _ Record) { b.state[i] = s })
}

// fates counts what became of a batch's records with data; unparsed
// counts the accepted ones that went without their parsed fields.
type fates struct{ accepted, unparsed, poison, large, rejected int }

// count tallies the fates of the records with data.
func (b *Batch) count() (f fates) {
	for i, r := range b.Records {
		if r.Skip {
			continue
		}
		switch b.state[i] {
		case acceptedUnparsed:
			f.accepted++
			f.unparsed++
		case dropPoison:
			f.poison++
		case dropLarge:
			f.large++
		case dropBatch:
			f.rejected++
		default:
			f.accepted++
		}
	}
	return f
}
