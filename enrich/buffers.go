package enrich

// keptBytes is how large a reused buffer may be and still be kept when
// it has many times the room its use needs.
const keptBytes = 256 << 10

// Sized returns buf emptied, with room for need bytes. It is a new buffer
// when buf has less room, and also when buf has more than keptBytes and
// over four times need: after one huge line (TAILCAR_MAX_RECORD_BYTES
// raised), the buffers sized for it must not stay that size for the rest
// of the run, while a buffer that lines of a steady size keep reusing
// (Go's append leaves at most twice what it holds) is kept.
func Sized(buf []byte, need int) []byte {
	if c := cap(buf); c < need || (c > keptBytes && c > 4*need) {
		return make([]byte, 0, need)
	}
	return buf[:0]
}
