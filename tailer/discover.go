package tailer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// candidate is a regular file the patterns match now.
type candidate struct {
	path  string // as the glob found it
	real  string // symlinks resolved
	id    fileID
	size  int64
	mtime time.Time
}

// discover returns the files the patterns match now, by identity. A file
// reached under two names (a symlink and its target, a hard link, two
// patterns) is one candidate.
func (f *Follower) discover() map[fileID]candidate {
	found := make(map[fileID]candidate)
	for _, pattern := range f.cfg.Patterns {
		// WithNoFollow: ** does not descend into symlinked directories,
		// so a link to / or to .. cannot make a scan endless.
		matches, err := doublestar.FilepathGlob(pattern, doublestar.WithFilesOnly(), doublestar.WithNoFollow())
		if err != nil {
			f.cfg.Log.Debug().Err(err).Str("pattern", pattern).Msg("glob failed")
			continue
		}
		for _, path := range matches {
			if f.excluded(path) {
				continue
			}
			c, why := f.admit(path)
			if why != "" {
				f.refuse(path, why)
				continue
			}
			if c.path == "" {
				continue // a directory, or gone: nothing to say
			}
			// One file under two names: keep the name already followed, or
			// the target's own over a link's, or the first in order, so the
			// name does not flap between scans.
			if prev, dup := found[c.id]; dup && f.preferName(prev, c) {
				continue
			}
			found[c.id] = c
		}
	}
	return found
}

// preferName reports whether prev, found first, keeps its name over c.
func (f *Follower) preferName(prev, c candidate) bool {
	if fl := f.files[prev.id]; fl != nil {
		return fl.path != c.path
	}
	return prev.path < c.path
}

// admit checks a matched path: a regular file, or a symlink whose target
// is a regular file inside the allowed directories, and none of tailcar's
// own files. It returns the candidate, or why the path is refused; both
// are empty for what is simply not a file (a directory, a vanished path).
func (f *Follower) admit(path string) (candidate, string) {
	li, err := os.Lstat(path)
	if err != nil {
		return candidate{}, ""
	}
	real := path
	if li.Mode()&fs.ModeSymlink != 0 {
		if real, err = filepath.EvalSymlinks(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return candidate{}, "" // a dangling link, perhaps to a file still to come
			}
			return candidate{}, "cannot resolve symlink: " + err.Error()
		}
		if real, err = filepath.Abs(real); err != nil {
			return candidate{}, err.Error()
		}
		if !f.allowedTarget(real) {
			return candidate{}, "symlink leads to " + real + ", outside the patterns' directories and TAILCAR_SYMLINK_ROOTS"
		}
	}
	if f.isOwn(path) || f.isOwn(real) {
		return candidate{}, ""
	}
	fi, err := os.Stat(real) // stat never blocks, whatever the file is
	if err != nil {
		return candidate{}, ""
	}
	switch {
	case fi.IsDir():
		return candidate{}, ""
	case !fi.Mode().IsRegular():
		return candidate{}, "not a regular file (" + fi.Mode().Type().String() + ")"
	}
	id, ok := idOf(fi)
	if !ok {
		return candidate{}, ""
	}
	return candidate{path: path, real: real, id: id, size: fi.Size(), mtime: fi.ModTime()}, ""
}

// allowedTarget reports whether a symlink's resolved target lies inside
// a directory a pattern names, or inside a configured symlink root.
func (f *Follower) allowedTarget(real string) bool {
	for _, root := range f.roots {
		if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// isOwn reports whether path is one of tailcar's own files.
func (f *Follower) isOwn(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	return f.own[abs]
}

// excluded reports whether path matches TAILCAR_EXCLUDE.
func (f *Follower) excluded(path string) bool {
	base := filepath.Base(path)
	for _, pattern := range f.cfg.Exclude {
		target := path
		if !strings.Contains(pattern, "/") {
			target = base
		}
		if ok, _ := doublestar.PathMatch(pattern, target); ok {
			return true
		}
	}
	return false
}

// refuse records, during a scan, that a matching path was not followed.
func (f *Follower) refuse(path, why string) { f.refusedNow[path] = why }

// noteRefusals ends a scan's record of refusals: a path newly refused, or
// refused for a new reason, is warned about once and counted. Paths no
// longer refused are forgotten, so the record stays as small as the
// problem, and a path refused again later is warned about again.
func (f *Follower) noteRefusals() {
	for path, why := range f.refusedNow {
		if f.refused[path] != why {
			f.refusals.Add(1)
			f.cfg.Log.Warn().Str("path", path).Str("why", why).Msg("matching file not followed")
		}
	}
	f.refused, f.refusedNow = f.refusedNow, f.refused
	clear(f.refusedNow)
}

// rootsOf lists the directories symlink targets may lie in: the fixed
// part of each pattern and each configured root, as given and with
// symlinks resolved, since either may be the way the target is named.
func rootsOf(patterns, extra []string) []string {
	var dirs []string
	for _, p := range patterns {
		base, _ := doublestar.SplitPattern(filepath.ToSlash(p))
		dirs = append(dirs, filepath.FromSlash(base))
	}
	dirs = append(dirs, extra...)
	var roots []string
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		roots = append(roots, abs)
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			roots = append(roots, real)
		}
	}
	return roots
}

// matchesInBaseOnly reports whether every pattern matches files only
// directly inside its fixed base directory (/var/log/app/*.log), which
// is watched: then a file appearing makes an event. Under ** or a
// wildcard directory, a file can appear in a directory nobody watches
// yet, and only a scan finds it.
func matchesInBaseOnly(patterns []string) bool {
	for _, p := range patterns {
		_, rest := doublestar.SplitPattern(filepath.ToSlash(p))
		if strings.Contains(rest, "/") || strings.Contains(rest, "**") {
			return false
		}
	}
	return true
}

// ownFiles lists tailcar's own files by absolute path, as given and with
// the directory's symlinks resolved.
func ownFiles(paths []string) map[string]bool {
	own := make(map[string]bool)
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		own[abs] = true
		if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
			own[filepath.Join(dir, filepath.Base(abs))] = true
		}
	}
	return own
}
