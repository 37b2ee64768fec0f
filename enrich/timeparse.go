package enrich

import (
	"fmt"
	"time"
)

// TimeAuto is TAILCAR_TIME_FORMAT's default: the formats tailcar
// recognises by their shape.
const TimeAuto = "auto"

// TimeFormat reads an event's time: TimeAuto, or a Go time layout.
type TimeFormat struct {
	// Layout is a Go layout; empty means auto.
	Layout string
	// yearless is set for a layout with a month and a day but no year,
	// as syslog's Jan _2 15:04:05: the year is inferred (see withYear).
	yearless bool
}

// NewTimeFormat returns the TimeFormat for a TAILCAR_TIME_FORMAT value.
// A layout must read a date: without one every time is in the year 0,
// which Parse refuses, so each line would silently keep its read time.
// That is what a layout written as strftime (%Y-%m-%d) or with a typo in
// the reference time would do.
func NewTimeFormat(v string) (TimeFormat, error) {
	if v == TimeAuto {
		return TimeFormat{}, nil
	}
	// Not the reference time itself: a layout that reads no month would
	// still give its January 2nd.
	probe := time.Date(2007, 3, 4, 16, 5, 6, 0, time.UTC)
	t, err := time.Parse(v, probe.Format(v))
	switch {
	case err == nil && t.Year() == probe.Year():
		return TimeFormat{Layout: v}, nil
	case err == nil && t.Year() == 0 && t.Month() == probe.Month() && t.Day() == probe.Day():
		return TimeFormat{Layout: v, yearless: true}, nil
	}
	return TimeFormat{}, fmt.Errorf("layout %q reads no date: want auto or a Go layout of the time Mon Jan 2 15:04:05 MST 2006, such as 2006-01-02 15:04:05", v)
}

// Parse reads b, the text of a time field (a JSON number when number is
// set), and returns the time in UTC. auto accepts RFC 3339 with any
// precision and offset, Unix times as numbers (seconds, milliseconds,
// microseconds or nanoseconds, told apart by size) and nginx's
// 02/Jan/2006:15:04:05 -0700. Years outside 1–9999 are refused: a
// backend would refuse them, or file them in the wrong millennium.
func (tf TimeFormat) Parse(b []byte, number bool) (time.Time, bool) {
	if tf.Layout != "" {
		t, err := time.Parse(tf.Layout, string(b))
		if err == nil && tf.yearless {
			t = withYear(t, time.Now())
		}
		if err != nil || t.Year() < minYear || t.Year() > maxYear {
			return time.Time{}, false
		}
		return t.UTC(), true
	}
	if t, ok := ParseRFC3339(b); ok {
		return t, true
	}
	if t, ok := parseUnix(b); ok {
		return t, true
	}
	if !number {
		return parseCommonLog(b)
	}
	return time.Time{}, false
}

// Unix times up to these bounds are taken for seconds, milliseconds and
// microseconds; beyond, nanoseconds. 1e11 seconds is the year 5138, and
// 1e11 milliseconds is 1973, so the ranges do not overlap in practice.
const (
	maxUnixSeconds = 1e11
	maxUnixMillis  = 1e14
	maxUnixMicros  = 1e17
)

// parseUnix reads digits with an optional fraction, without float
// rounding: 1732442400.123456789 keeps its nanoseconds.
func parseUnix(b []byte) (time.Time, bool) {
	if len(b) == 0 || len(b) > 40 {
		return time.Time{}, false
	}
	var whole int64
	i, digits := 0, 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		if digits++; digits > 19 {
			return time.Time{}, false
		}
		whole = whole*10 + int64(b[i]-'0')
	}
	if digits == 0 {
		return time.Time{}, false
	}
	var frac int64 // nanoseconds of the fraction, at the unit found below
	fracDigits := 0
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b) && isDigit(b[i]); i++ {
			if fracDigits < 9 {
				frac = frac*10 + int64(b[i]-'0')
				fracDigits++
			}
		}
		if fracDigits == 0 {
			return time.Time{}, false
		}
	}
	if i != len(b) {
		return time.Time{}, false
	}
	for ; fracDigits < 9; fracDigits++ {
		frac *= 10
	}
	var t time.Time
	switch {
	case whole < maxUnixSeconds:
		t = time.Unix(whole, frac)
	case whole < maxUnixMillis:
		t = time.Unix(whole/1e3, (whole%1e3)*1e6+frac/1e3)
	case whole < maxUnixMicros:
		t = time.Unix(whole/1e6, (whole%1e6)*1e3+frac/1e6)
	default:
		t = time.Unix(0, whole)
	}
	if whole == 0 && frac == 0 {
		return time.Time{}, false // 0 is "no time", not 1970
	}
	return t.UTC(), true
}

var monthAbbrev = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseCommonLog reads nginx's and Apache's 02/Jan/2006:15:04:05 -0700.
func parseCommonLog(b []byte) (time.Time, bool) {
	if len(b) != 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' || b[20] != ' ' {
		return time.Time{}, false
	}
	month := 0
	for i, m := range monthAbbrev {
		if string(b[3:6]) == m {
			month = i + 1
		}
	}
	day, ok1 := digits(b[0:2])
	year, ok2 := digits(b[7:11])
	hour, ok3 := digits(b[12:14])
	minute, ok4 := digits(b[15:17])
	sec, ok5 := digits(b[18:20])
	oh, ok6 := digits(b[22:24])
	om, ok7 := digits(b[24:26])
	if month == 0 || !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || b[21] != '+' && b[21] != '-' || oh > 23 || om > 59 {
		return time.Time{}, false
	}
	offset := oh*3600 + om*60
	if b[21] == '-' {
		offset = -offset
	}
	return civil(year, month, day, hour, minute, sec, 0, offset)
}

// withYear gives t, read without a year, the year that puts it nearest
// before now, as syslog daemons do: this year, or last year when that
// would be more than a day ahead (a December line read in January). The
// day's slack covers time zones and clocks a little ahead.
func withYear(t, now time.Time) time.Time {
	y := time.Date(now.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	if y.After(now.Add(24 * time.Hour)) {
		y = y.AddDate(-1, 0, 0)
	}
	return y
}
