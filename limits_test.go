package main

import (
	"errors"
	"runtime"
	"runtime/debug"
	"testing"
)

// Ensure tailcar runs on one core unless GOMAXPROCS says otherwise.
func TestApplyProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(4)
	if got := applyProcs(func(string) (string, bool) { return "", false }); got != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("unset: applyProcs %d, GOMAXPROCS %d; want 1", got, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(4)
	if got := applyProcs(func(k string) (string, bool) { return "4", k == "GOMAXPROCS" }); got != 0 || runtime.GOMAXPROCS(0) != 4 {
		t.Fatalf("set: applyProcs %d, GOMAXPROCS %d; want it left at 4", got, runtime.GOMAXPROCS(0))
	}
}

func TestParseCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"67108864\n", 64 << 20, true},
		{"max\n", 0, false},
		{"9223372036854771712\n", 0, false}, // cgroup v1 "unlimited"
		{"", 0, false},
	} {
		got, ok := parseCgroupLimit(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseCgroupLimit(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// Ensure a container limit becomes the runtime's soft limit, and that
// GOMEMLIMIT, when set, is left alone.
// Ensure the records' size is compared with the memory limit: the default
// 1 MiB fits a 64Mi container, 16 MiB does not (measured: 68.8 MB RSS).
func TestRecordOutgrows(t *testing.T) {
	limit := int64(64<<20) * 9 / 10 // applyMemoryLimit's share of 64Mi
	for _, tc := range []struct {
		record, limit int64
		want          bool
	}{
		{1 << 20, limit, false},
		{8 << 20, limit, false},
		{16 << 20, limit, true},
		{1 << 30, 0, false}, // no limit known
		{1 << 20, 4 << 20, true},
	} {
		if got := recordOutgrows(tc.record, tc.limit); got != tc.want {
			t.Errorf("recordOutgrows(%d, %d) = %v, want %v", tc.record, tc.limit, got, tc.want)
		}
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	files := map[string]string{"/sys/fs/cgroup/memory.max": "67108864\n"}
	read := func(name string) ([]byte, error) {
		if v, ok := files[name]; ok {
			return []byte(v), nil
		}
		return nil, errors.New("no such file")
	}
	share := memoryLimitShare
	if got, want := applyMemoryLimit(read), int64(float64(64<<20)*share); got != want || debug.SetMemoryLimit(-1) != want {
		t.Fatalf("limit %d, want %d", got, want)
	}
	files = map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}
	if got := applyMemoryLimit(read); got != 0 {
		t.Fatalf("unlimited cgroup gave a limit of %d", got)
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	files = map[string]string{"/sys/fs/cgroup/memory.max": "67108864\n"}
	if got := applyMemoryLimit(read); got != 0 {
		t.Fatal("GOMEMLIMIT was overridden")
	}
}
