package tailer

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Ensure the periodic scan comes at the quiet interval while file events
// report every file that can appear: here the short interval is an hour,
// so only the quiet one can refresh a followed file's size in Files,
// which nothing but a scan does.
func TestRescan_QuietWhileEventsSeeEveryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, 1, 10)
	cfg := testConfig(t, dir, "*.log")
	cfg.RescanInterval, cfg.QuietRescanInterval = time.Hour, 100*time.Millisecond
	r := startFollower(t, cfg)
	waitCount(t, r, 10)
	appendFile(t, path, 11, 20)
	waitCount(t, r, 20)
	fi, err := os.Stat(path)
	must(t, err)
	waitFor(t, 10*time.Second, "a scan to see the file's new size", func() bool {
		files := r.f.Files()
		return len(files) == 1 && files[0].Size == fi.Size()
	})
	r.stop(t)
	requireExactlyOnce(t, r.c.texts(), 20)
}

// Ensure the short interval comes back whenever something waits for a
// scan or events cannot see a file appear; the quiet interval is an hour
// here, so each case would wait that long.
func TestRescan_ShortWhileAScanIsAwaited(t *testing.T) {
	quietHour := func(cfg Config) Config {
		cfg.QuietRescanInterval = time.Hour
		return cfg
	}
	// scanned waits for the first scan, so that what a case makes next
	// is not found by it.
	scanned := func(t *testing.T, r *running) {
		waitFor(t, 10*time.Second, "the first scan", func() bool { return r.f.states.Load() != nil })
	}

	t.Run("a file in a new directory under **", func(t *testing.T) {
		dir := t.TempDir()
		r := startFollower(t, quietHour(testConfig(t, dir, "**/*.log")))
		scanned(t, r)
		before := r.f.states.Load()
		deep := filepath.Join(dir, "pod", "container")
		must(t, os.MkdirAll(deep, 0o755))
		// The new directory's event brings a scan, which finds no file
		// yet; the file then appears where no watch sees it.
		waitFor(t, 10*time.Second, "a scan after the directory appeared", func() bool { return r.f.states.Load() != before })
		appendFile(t, filepath.Join(deep, "0.log"), 1, 50)
		waitCount(t, r, 50)
		r.stop(t)
		requireExactlyOnce(t, r.c.texts(), 50)
	})

	t.Run("a base directory that appears later", func(t *testing.T) {
		dir := t.TempDir()
		r := startFollower(t, quietHour(testConfig(t, dir, "later/*.log")))
		scanned(t, r)
		must(t, os.Mkdir(filepath.Join(dir, "later"), 0o755))
		appendFile(t, filepath.Join(dir, "later", "app.log"), 1, 50)
		waitCount(t, r, 50)
		r.stop(t)
		requireExactlyOnce(t, r.c.texts(), 50)
	})

	t.Run("a possible copy to decide", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.log")
		appendFile(t, path, 1, 50)
		r := startFollower(t, quietHour(testConfig(t, dir, "*.log")))
		waitCount(t, r, 50)
		// A new file identical to a followed one may be its copytruncate
		// copy, until the rotate wait shows the original was not
		// truncated; nothing writes to it, so only a scan decides, and
		// then it is read from its start.
		data, err := os.ReadFile(path)
		must(t, err)
		copyPath := filepath.Join(dir, "copy.log")
		must(t, os.WriteFile(copyPath, data, 0o644))
		byPath := func() map[string][]string {
			out := make(map[string][]string)
			for _, l := range r.c.snapshot() {
				out[l.Path] = append(out[l.Path], string(l.Text))
			}
			return out
		}
		waitFor(t, 30*time.Second, "the copy to be decided and read", func() bool { return len(byPath()[copyPath]) >= 50 })
		r.stop(t)
		got := byPath()
		requireExactlyOnce(t, got[path], 50)
		requireExactlyOnce(t, got[copyPath], 50)
	})

	t.Run("a deleted file to finish", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.log")
		appendFile(t, path, 1, 49)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		_, err = f.WriteString(line(50)) // no newline: only finishing ships it
		must(t, err)
		must(t, f.Close())
		r := startFollower(t, quietHour(testConfig(t, dir, "*.log")))
		waitCount(t, r, 49)
		must(t, os.Remove(path))
		waitCount(t, r, 50)
		waitFor(t, 10*time.Second, "the deleted file to be let go", func() bool { return len(r.f.Files()) == 0 })
		r.stop(t)
		requireExactlyOnce(t, r.c.texts(), 50)
	})
}
