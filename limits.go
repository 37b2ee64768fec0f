package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

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
