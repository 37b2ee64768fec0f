package tailer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Ensure the kernel behaves as the page pin counts on (pin.go): a page
// pinned through vmsplice holds the bytes the writer adds to it after the
// pin, up to the truncation, and none of the next generation's. Checked
// in the test's directory and, where there is one, in a tmpfs (an
// emptyDir with medium Memory).
func TestPagePin_KeepsWhatTheTruncationWipes(t *testing.T) {
	dirs := map[string]string{"testdir": t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if shm, err := os.MkdirTemp("/dev/shm", "tailcar-pin-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			dirs["tmpfs"] = shm
		}
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "app.log")
			w := openAppend(t, path)
			writeLines(t, w, 1, 5)
			read := fileSize(t, path)
			p := pinFile(t, path)
			if !p.hold(read, false) {
				t.Fatal("pinning the page the file ends in failed")
			}
			p.confirm()             // a look found the file whole
			writeLines(t, w, 6, 20) // after the pin: no read reaches these
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Truncate(0); err != nil {
				t.Fatal(err)
			}
			writeLines(t, w, 1001, 1005) // the next generation
			got := p.harvest(read, fileSize(t, path))
			if !bytes.Equal(got, want[read:]) {
				t.Fatalf("the pinned page kept %q; want lines 6..20, %q", got, want[read:])
			}
		})
	}
}

// Ensure a line that runs past the pinned page is kept as far as the page
// goes, and that a pin is refused where no page is: the file's end on a
// page boundary, nothing written beyond it.
func TestPagePin_KeepsToThePageEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	ps := int64(os.Getpagesize())
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), int(ps-1)), 0o644); err != nil {
		t.Fatal(err)
	}
	w := openAppend(t, path)
	if _, err := w.WriteString("\n"); err != nil {
		t.Fatal(err)
	}
	p := pinFile(t, path)
	if p.hold(ps, false) {
		t.Fatal("pinned a page wholly beyond the file's end")
	}
	if !p.hold(ps-1, false) {
		t.Fatal("pinning the file's last page failed")
	}
	p.confirm()
	writeLines(t, w, 1, 3)
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if got := p.harvest(ps, 0); got != nil {
		t.Fatalf("kept %q from beyond the pinned page", got)
	}
	if got := p.harvest(ps-1, 0); !bytes.Equal(got, []byte("\n")) {
		t.Fatalf("kept %q from the page's last byte; want its newline", got)
	}
}

// pinFile opens the file at path to read and returns a pin over its
// first MiB, closed with the test.
func pinFile(t *testing.T, path string) *pagePin {
	t.Helper()
	rd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	p, err := newPagePin(int(rd.Fd()), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// Ensure a pin no look confirmed is used only where it cannot be the next
// generation's: the truncation came before any look, and the next
// generation has not reached the page. A pin taken of the next
// generation's page (the truncation between the rescue's read and its
// pin) is refused.
func TestPagePin_AnUnconfirmedPin(t *testing.T) {
	ps := int64(os.Getpagesize())
	path := filepath.Join(t.TempDir(), "app.log")
	w := openAppend(t, path)
	p := pinFile(t, path)
	n := 0
	for fileSize(t, path) < ps+ps/4 {
		n++
		writeLines(t, w, n, n)
	}
	read := fileSize(t, path)
	if !p.hold(read, false) {
		t.Fatal("pinning the page the file ends in failed")
	}
	writeLines(t, w, n+1, n+3)
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, 1001, 1003) // shorter than a page
	if got := p.harvest(read, fileSize(t, path)); !bytes.Equal(got, want[read:]) {
		t.Fatalf("kept %q; want the three lines written after the pin, %q", got, want[read:])
	}

	// The truncation between the read and the pin: the next generation
	// is past the page's offset already.
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	for fileSize(t, path) < read+10 {
		n++
		writeLines(t, w, n, n)
	}
	if !p.hold(read, false) {
		t.Fatal("pinning a page of the next generation failed")
	}
	if got := p.harvest(read, fileSize(t, path)); got != nil {
		t.Fatalf("kept %q from a pin no look confirmed, with the file past its page", got)
	}
}

// Ensure a descriptor that cannot be mapped gives no pin, and that a
// rescue without one (a nil pin) goes on as before: every method does
// nothing.
func TestPagePin_NoneWhereNoMapping(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if p, err := newPagePin(int(r.Fd()), 0, 1<<20); err == nil {
		p.close()
		t.Fatal("mapped a pipe")
	}
	var p *pagePin
	if p.hold(0, false) {
		t.Fatal("a nil pin pinned")
	}
	p.confirm()
	if got := p.harvest(0, 0); got != nil {
		t.Fatalf("a nil pin kept %q", got)
	}
	p.close()
}
