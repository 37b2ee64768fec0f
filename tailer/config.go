package tailer

import (
	"fmt"
	"regexp"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for the follower's internals, which users have no reason to tune.
const (
	// DefaultRescanInterval is the safety net behind inotify: a glob that
	// finds files whose events were missed (overflow, network filesystems).
	// It also finishes rotated and deleted files, and decides the possible
	// copies that no write of theirs decided.
	DefaultRescanInterval = 2 * time.Second
	// DefaultQuietRescanInterval replaces it while events can see every
	// file that may appear, and no scan is awaited (rescanInterval): the
	// glob was the largest cost of an idle tailcar beyond what the floor
	// does (README, "Performance"). Filebeat and Promtail scan every 10 s.
	DefaultQuietRescanInterval = 10 * time.Second
	// DefaultRotateWait is how long a rotated or deleted file is kept open
	// after it last changed size, for an app that still writes to the old
	// file; then it is finished, partial last line included, and closed.
	DefaultRotateWait = 5 * time.Second
	// DefaultMultilineWait closes a multiline record, or a container line
	// whose last chunk never came (an app that exited mid-line), when no line has
	// followed it for this long, so the last one is not held forever.
	DefaultMultilineWait = time.Second
	// DefaultMaxOpen bounds open descriptors; idle files beyond it are
	// closed and reopened by identity when they grow.
	DefaultMaxOpen = 256
	// DefaultSettle is how long file changes gather before the files they
	// name are read. An app writing line by line makes an event per line;
	// reading on each costs a wake-up, a stat and a read per line. While
	// the loop waits, the kernel merges repeated events, so 100 lines a
	// second cost a couple of reads, not a hundred. tailcar sets it from
	// TAILCAR_BATCH_WAIT, which records wait in their batch anyway.
	DefaultSettle = 100 * time.Millisecond
	// DefaultRiskWindow is how long a file stays read eagerly after
	// another process opened it: a copier (logrotate's copytruncate) opens
	// the file, copies it and truncates it, and every line written between
	// the copy and the truncation exists only until then.
	DefaultRiskWindow = 5 * time.Second
	// DefaultCopyPoll is how long a file another process opened is
	// rescued (rescue.go), unless it is truncated first. logrotate copies, fsyncs and truncates a few MiB
	// within it; a larger copy is still read at each change. A reader that
	// never truncates (cat, cp) delays the reading of that file by as much.
	DefaultCopyPoll = 250 * time.Millisecond

	// readBufferSize is the line buffer shared by every file. A longer line
	// is gathered up to the record cap, and the rest is skipped unread.
	readBufferSize = 64 << 10
	// readBudget is how much one file may read before the others get a
	// turn, so a busy file does not starve quiet ones.
	readBudget = 1 << 20
	// retiredKeep is how long a truncated generation is remembered to
	// recognise its copytruncate copy appearing after the truncation.
	retiredKeep = 10 * time.Minute
)

// Format is how a file's lines frame records.
type Format int

// Formats, as TAILCAR_FORMAT names them.
const (
	FormatLines  Format = iota // every line is a record
	FormatCRI                  // <time> <stream> <P|F>[:tags] <content>
	FormatDocker               // {"log":"…","stream":"…","time":"…"}
	FormatAuto                 // decided per file from its first complete line
)

// ParseFormat reads a TAILCAR_FORMAT value.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "lines":
		return FormatLines, nil
	case "cri":
		return FormatCRI, nil
	case "docker":
		return FormatDocker, nil
	case "auto":
		return FormatAuto, nil
	}
	return 0, fmt.Errorf("must be lines, cri, docker or auto, not %q", s)
}

// Config configures a Follower.
type Config struct {
	// Patterns are doublestar globs of files to follow.
	Patterns []string
	// Exclude are globs of files never followed: without '/', matched
	// against the base name; with '/', against the whole path.
	Exclude []string
	// SymlinkRoots are directories where a symlink's target may lie,
	// besides the directories the patterns name.
	SymlinkRoots []string
	// Ignore are tailcar's own files (positions, recent positions, their
	// temp file, the heartbeat): never followed, and their changes wake
	// nothing.
	Ignore []string
	// StartAtEnd starts files found at start that have no checkpoint at
	// their end instead of their beginning.
	StartAtEnd bool
	// Format frames records; FormatLines unless set.
	Format Format
	// MaxRecordBytes cuts longer records.
	MaxRecordBytes int
	// Multiline, when set, matches the first line of a record.
	Multiline *regexp.Regexp
	// Positions holds the checkpoints.
	Positions *Positions
	Log       zerolog.Logger
	Pulse     Pulse
	// Settle is how long events gather before reading; the others are
	// internal. Zero values mean the defaults above.
	RescanInterval, QuietRescanInterval, RotateWait, MultilineWait, Settle, RiskWindow, CopyPoll time.Duration
	MaxOpen                                                                                      int
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RescanInterval, DefaultRescanInterval)
	def(&c.QuietRescanInterval, DefaultQuietRescanInterval)
	def(&c.RotateWait, DefaultRotateWait)
	def(&c.MultilineWait, DefaultMultilineWait)
	def(&c.Settle, DefaultSettle)
	def(&c.RiskWindow, DefaultRiskWindow)
	def(&c.CopyPoll, DefaultCopyPoll)
	if c.MaxOpen <= 0 {
		c.MaxOpen = DefaultMaxOpen
	}
	if c.Pulse == nil {
		c.Pulse = noPulse{}
	}
}

// Stats counts what the Follower read and saw.
type Stats struct {
	Lines, Bytes, Files int64
	// Rotations seen, by kind: the path now leads to another file
	// (Renamed), to none (Deleted), the file shrank or was rewritten
	// (Truncated), a new file was a copy of one followed (Copied).
	Renamed, Deleted, Truncated, Copied int64
	// Refused counts matching paths that were not followed: not a regular
	// file, a symlink leading outside the allowed directories, or a file
	// that could not be opened.
	Refused int64
	// Malformed counts lines that did not have the container format they
	// were read with, and were shipped as plain lines.
	Malformed int64
}

// FileState is one followed file as of the last scan.
type FileState struct {
	Path   string
	Source uint64
	Size   int64
}
