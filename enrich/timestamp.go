package enrich

import (
	"time"
)

// Years outside this range are taken for garbage rather than times: an
// RFC 3339 year has four digits, and backends refuse year 0.
const (
	minYear = 1
	maxYear = 9999
)

// ParseRFC3339 reads an RFC 3339 time with any number of fractional
// digits (trailing zeros trimmed or not; past nine, as time.Parse does,
// only the first nine count) and a Z or numeric offset (+00:00 as conmon
// writes it, or +0000), and returns it in UTC.
// It does not allocate, unlike time.Parse on a converted byte slice.
func ParseRFC3339(b []byte) (time.Time, bool) {
	// 2006-01-02T15:04:05Z is the shortest form.
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	if c := b[10]; c != 'T' && c != 't' && c != ' ' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		scale := 100000000
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			if n <= 9 {
				nsec += int(rest[n]-'0') * scale
				scale /= 10
			}
			n++
		}
		if n == 1 {
			return time.Time{}, false // a dot with no digits
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':',
		len(rest) == 5 && (rest[0] == '+' || rest[0] == '-'):
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[len(rest)-2:])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	return civil(year, month, day, hour, minute, sec, nsec, offset)
}

// civil builds a UTC time from calendar fields given at a UTC offset in
// seconds, refusing fields out of range rather than normalising them as
// time.Date would (the 31st of February is an error, not March 3rd).
func civil(year, month, day, hour, minute, sec, nsec, offset int) (time.Time, bool) {
	if year < minYear || year > maxYear || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	if sec == 60 {
		sec = 59 // a leap second; Go's time has none
	}
	unix := daysFromCivil(year, month, day)*secondsPerDay + int64(hour*3600+minute*60+sec-offset)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// digits reads a run of ASCII digits as a number.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}
