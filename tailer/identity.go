package tailer

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// fileID is where a file lives: device and inode. A path is not an
// identity: rotation gives the same path to another file.
type fileID struct {
	Dev, Ino uint64
}

func idOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{Dev: uint64(st.Dev), Ino: st.Ino}, true
}

// Fingerprint sizes. The fingerprint tells a reused inode from the file
// that had it, and a copytruncate copy from a new file.
const (
	// fingerprintMax is how many leading bytes are hashed.
	fingerprintMax = 1024
	// copyMinFingerprint is the least a fingerprint must cover before a
	// new file is taken for a copy of an old one: two unrelated files can
	// share a short first line, and taking one for a copy skips lines.
	copyMinFingerprint = 64
)

// fingerprint is a hash of a file's first Len bytes.
type fingerprint struct {
	Len int
	Sum uint64
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd(h uint64, p []byte) uint64 {
	for _, c := range p {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// checkFingerprint reads f's head into scratch and reports whether its
// first old.Len bytes still hash to old.Sum, and the fingerprint of the
// head as it is now (longer while the file is still short).
func checkFingerprint(f io.ReaderAt, old fingerprint, scratch []byte) (same bool, now fingerprint, err error) {
	n, err := f.ReadAt(scratch[:fingerprintMax], 0)
	if err != nil && err != io.EOF {
		return false, fingerprint{}, fmt.Errorf("read fingerprint: %w", err)
	}
	head := scratch[:n]
	if n < old.Len {
		return false, fingerprint{Len: n, Sum: fnvAdd(fnvOffset, head)}, nil
	}
	h := fnvAdd(fnvOffset, head[:old.Len])
	same = h == old.Sum
	return same, fingerprint{Len: n, Sum: fnvAdd(h, head[old.Len:])}, nil
}
