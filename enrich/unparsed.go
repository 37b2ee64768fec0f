package enrich

import "encoding/binary"

// A backend can refuse a parsed record for its fields: Elasticsearch
// refuses a document whose field was a number in earlier documents and
// is text in this one, an object where a value was, or one field too
// many for the index. The line must not be lost to that, so the sink
// sends the record again as TAILCAR_PARSE=none would have shipped it
// (keeping the event's time). Encoding that form for every record would
// cost a second encoding of each line, and nearly every record never
// needs it; so a parsed record carries a seed instead, its line and
// where its message and its parsed fields are, and the unparsed form is
// built from the record and its seed only when a backend refuses it.

// splice is where, in an encoded record, the message member starts and
// ends (equal when there is none), and where the parsed fields start.
type splice struct{ message, messageEnd, fields int }

const seedHeader = 12 // three little-endian uint32 offsets

// AppendRecordSeed appends the record to dst, as AppendRecord does, and
// the head of its seed to head. The seed AppendUnparsed takes is the head
// followed by r.Message; the two are returned apart so that a long line
// is copied once, where the seed is kept, not to join them.
func (e *Encoder) AppendRecordSeed(dst, head []byte, r Record) (rec, headOut []byte) {
	var at splice
	dst = e.appendRecord(dst, r, &at)
	head = binary.LittleEndian.AppendUint32(head, uint32(at.message))
	head = binary.LittleEndian.AppendUint32(head, uint32(at.messageEnd))
	return dst, binary.LittleEndian.AppendUint32(head, uint32(at.fields))
}

// AppendUnparsed appends to dst the record rec without its parsed fields
// and with its line as the message, from the seed AppendRecordSeed gave
// with it (its head and the record's line). It reports false when the seed does not fit the record.
func AppendUnparsed(dst, rec, seed []byte) ([]byte, bool) {
	if len(seed) < seedHeader {
		return dst, false
	}
	message := int(binary.LittleEndian.Uint32(seed))
	messageEnd := int(binary.LittleEndian.Uint32(seed[4:]))
	fields := int(binary.LittleEndian.Uint32(seed[8:]))
	if message > messageEnd || messageEnd > fields || fields >= len(rec) {
		return dst, false
	}
	dst = append(dst, rec[:message]...)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, seed[seedHeader:])
	dst = append(dst, rec[messageEnd:fields]...)
	return append(dst, '}'), true
}
