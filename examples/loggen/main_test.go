package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ensure --times marks the first line written after the file was
// truncated under loggen, and only that one: bench/copytruncate.sh tells
// from it which truncation a lost line was lost to.
func TestWriteTimes_MarkTheFirstLineAfterATruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var times writeTimes
	began := time.UnixMicro(1_796_000_000_000_000)
	for seq := 1; seq <= 4; seq++ {
		if seq == 3 {
			// logrotate's copytruncate, through another descriptor
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.WriteString("a line\n"); err != nil {
			t.Fatal(err)
		}
		if err := times.note(f, seq, began); err != nil {
			t.Fatal(err)
		}
	}
	want := "1 1796000000000000 0\n2 1796000000000000 0\n3 1796000000000000 1\n4 1796000000000000 0\n"
	if got := string(times.text); got != want {
		t.Errorf("times:\n%s\nwant:\n%s", strings.TrimSpace(got), strings.TrimSpace(want))
	}
}
