package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// sidecarProcs is how many threads run Go code at once unless GOMAXPROCS
// says otherwise. One core ships about a million lines a second, more than
// any app beside it writes, and goroutines then hand work to each other
// without waking another thread: `make bench` measured the same CPU per
// line and less memory and idle CPU than with two (README, Performance).
// Go's own default is every core the container may use, which without a
// CPU limit is every core of the node.
const sidecarProcs = 1

// applyProcs sets GOMAXPROCS to sidecarProcs unless the environment sets
// it; it returns the value set, or 0 when left to the environment.
func applyProcs(lookupEnv func(string) (string, bool)) int {
	if _, set := lookupEnv("GOMAXPROCS"); set {
		return 0
	}
	runtime.GOMAXPROCS(sidecarProcs)
	return sidecarProcs
}

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// memoryLimitShare is the part of the container's limit the Go runtime
// aims to stay under, leaving room for what it does not count (stacks,
// the binary, kernel buffers).
const memoryLimitShare = 0.9

// applyMemoryLimit tells the Go runtime about the container's memory limit,
// so that it collects harder as the limit nears instead of being killed by
// the OOM killer; GOMEMLIMIT, when set, wins. It returns the limit set, or
// 0 when there is none.
func applyMemoryLimit(readFile func(string) ([]byte, error)) int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	for _, name := range cgroupMemoryFiles {
		data, err := readFile(name)
		if err != nil {
			continue
		}
		limit, ok := parseCgroupLimit(string(data))
		if !ok {
			return 0
		}
		target := int64(float64(limit) * memoryLimitShare)
		debug.SetMemoryLimit(target)
		return target
	}
	return 0
}

// recordMemoryFactor is about how much memory one record takes at its
// peak, in times its size: read, encoded into a batch, compressed and
// sent, with the collector's headroom. Measured with GOMEMLIMIT=57MiB, as
// in a container limited to 64Mi, and TAILCAR_MAX_RECORD_BYTES=64MiB:
// lines of 4, 8 and 16 MiB took tailcar to 27.7, 54.8 and 68.8 MB RSS.
const recordMemoryFactor = 6

// recordOutgrows reports whether a record of maxRecord bytes would take
// more memory than limit (0: none known). Such a line, when it comes, gets
// tailcar killed, and again at every restart, since it is read again.
func recordOutgrows(maxRecord, limit int64) bool {
	return limit > 0 && maxRecord > limit/recordMemoryFactor
}

// parseCgroupLimit reads memory.max ("max" when unlimited) or v1's
// limit_in_bytes (a huge number when unlimited).
func parseCgroupLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0, false
	}
	return n, true
}
