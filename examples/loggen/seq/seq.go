// Package seq counts numbered lines: every line loggen and the tests write
// carries "seq=N", so a delivery test can say which lines arrived, which
// are missing and which came more than once.
package seq

import (
	"fmt"
	"strings"
)

// key precedes a line's number.
const key = "seq="

// Of returns the number text carries, if any.
func Of(text string) (int, bool) {
	i := strings.Index(text, key)
	if i < 0 {
		return 0, false
	}
	n, digits := 0, 0
	for _, c := range []byte(text[i+len(key):]) {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
		digits++
	}
	return n, digits > 0
}

// Tally is the verdict on lines numbered 1..Written.
type Tally struct {
	Written, Received, Missing, Duplicated int
	// MissingSeqs are the missing numbers, in order.
	MissingSeqs []int
}

// Count tallies texts against lines 1..written. Received counts every
// numbered text; a number that came n times counts n-1 duplicates.
func Count(texts []string, written int) Tally {
	seen := make(map[int]int)
	t := Tally{Written: written}
	for _, s := range texts {
		if n, ok := Of(s); ok {
			seen[n]++
			t.Received++
		}
	}
	for i := 1; i <= written; i++ {
		switch n := seen[i]; {
		case n == 0:
			t.Missing++
			t.MissingSeqs = append(t.MissingSeqs, i)
		case n > 1:
			t.Duplicated += n - 1
		}
	}
	return t
}

// FirstMissing returns at most n of the missing numbers, for a message.
func (t Tally) FirstMissing(n int) []int { return t.MissingSeqs[:min(n, len(t.MissingSeqs))] }

func (t Tally) String() string {
	return fmt.Sprintf("written %d, received %d, missing %d, duplicated %d", t.Written, t.Received, t.Missing, t.Duplicated)
}
