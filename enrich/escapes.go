package enrich

import (
	"strings"
	"unicode/utf8"
)

// Go's escapes, which C's and Apache's logs share: logfmt values quoted by
// Go loggers (strconv.Quote), and nginx's and Apache's access logs (nginx
// writes \xHH; Apache writes \", \\, \xHH and white space in C's
// notation, \n and \t) are decoded by the one decoder.

// cEscapes are the letters of the one-character escapes, and cEscaped
// what each stands for.
const cEscapes, cEscaped = "abfnrtv", "\a\b\f\n\r\t\v"

// appendGoEscape appends what the escape at line[i] (just after its
// backslash) stands for, and returns the index of its last byte. A \u or
// \U that is not a Unicode character (a surrogate, beyond U+10FFFF)
// becomes U+FFFD, as invalid bytes do in records.
func appendGoEscape(dst, line []byte, i int) ([]byte, int) {
	e := line[i]
	if j := strings.IndexByte(cEscapes, e); j >= 0 {
		return append(dst, cEscaped[j]), i
	}
	switch e {
	case '"', '\\', '/', '\'':
		return append(dst, e), i
	case 'x':
		if b, ok := parseHex(line[i+1:], 2); ok {
			return append(dst, byte(b)), i + 2
		}
	case 'u', 'U':
		n := 4
		if e == 'U' {
			n = 8
		}
		if r, ok := parseHex(line[i+1:], n); ok {
			if !utf8.ValidRune(r) {
				r = utf8.RuneError
			}
			return utf8.AppendRune(dst, r), i + n
		}
	case '0', '1', '2', '3':
		if i+2 < len(line) && isOctal(line[i+1]) && isOctal(line[i+2]) {
			return append(dst, (e-'0')<<6|(line[i+1]-'0')<<3|(line[i+2]-'0')), i + 2
		}
	}
	return append(dst, '\\', line[i]), i
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
