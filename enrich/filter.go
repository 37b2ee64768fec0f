package enrich

import "regexp"

// Filter decides which lines are shipped: TAILCAR_INCLUDE keeps only the
// lines it matches, TAILCAR_DROP drops the lines it matches. Both look at
// the line as read (after multiline joining and truncation), before any
// parsing, so a filter is cheap and means the same whatever the format.
type Filter struct {
	// Include, when set, must match a line for it to be shipped.
	Include *regexp.Regexp
	// Drop, when set, must not match.
	Drop *regexp.Regexp
}

// Keep reports whether line is shipped.
func (f Filter) Keep(line []byte) bool {
	if f.Include != nil && !f.Include.Match(line) {
		return false
	}
	return f.Drop == nil || !f.Drop.Match(line)
}
