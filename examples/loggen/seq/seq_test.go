package seq

import (
	"slices"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{`GET /item?seq=42 HTTP/1.1`, 42, true},
		{`{"message":"seq=7"}`, 7, true},
		{`before seq=1`, 1, true},
		{`no number here`, 0, false},
		{`seq= empty`, 0, false},
	} {
		if got, ok := Of(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("Of(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCount(t *testing.T) {
	texts := []string{"seq=1", "seq=3", "seq=3", "seq=3", "seq=5", "other", "seq=9"}
	got := Count(texts, 5)
	want := Tally{Written: 5, Received: 6, Missing: 2, Duplicated: 2, MissingSeqs: []int{2, 4}}
	if got.Written != want.Written || got.Received != want.Received || got.Missing != want.Missing ||
		got.Duplicated != want.Duplicated || !slices.Equal(got.MissingSeqs, want.MissingSeqs) {
		t.Fatalf("Count = %+v, want %+v", got, want)
	}
	if first := got.FirstMissing(1); !slices.Equal(first, []int{2}) {
		t.Errorf("FirstMissing(1) = %v", first)
	}
	if s := got.String(); s != "written 5, received 6, missing 2, duplicated 2" {
		t.Errorf("String() = %q", s)
	}
}
