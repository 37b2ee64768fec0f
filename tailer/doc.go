// Package tailer finds the files to follow, reads them line by line
// across rotation, truncation and restarts, frames the lines into records
// (container formats, multiline), and keeps the checkpoints that say how
// far each file has been delivered.
//
// A reader finds each concern by its file name:
//
//	follower.go     the Follower and its loop: when to scan, when to read
//	events.go       file events: changes that settle, opens that put a file at risk
//	file.go         one followed file generation and its state
//	discover.go     which paths match, and which are refused (symlinks, own files)
//	watch.go        inotify: file changes read when the loop asks, opens that cannot wait
//	rescue.go       reading a file at each write while a copier may truncate it
//	descriptors.go  opening without blocking, the bound on open files
//	rotation.go     a scan: renamed, rotated away, deleted, truncated, finished
//	resume.go       where a newly found file starts: checkpoint, end, rotated-away files
//	copies.go       whether a new file is copytruncate's copy of a truncated one
//	identity.go     device, inode and fingerprint
//	read.go         reading a file into raw lines, overlong lines cut
//	records.go      raw lines into records: container chunks, multiline, acks
//	formats.go      the CRI and docker json-file line formats
//	positions.go    acknowledged offsets, their recent and durable files on disk
package tailer
