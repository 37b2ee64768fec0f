package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// Binaries built once for every end-to-end test in this package.
var (
	tailcarBin string
	// tailcarPlainBin is built without the race detector, whose shadow
	// memory would make any RSS figure meaningless.
	tailcarPlainBin string
	loggenBin       string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tailcar-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tailcarBin = filepath.Join(dir, "tailcar")
	tailcarPlainBin = filepath.Join(dir, "tailcar-plain")
	loggenBin = filepath.Join(dir, "loggen")
	for _, b := range []struct {
		out, pkg string
		race     bool
	}{{tailcarBin, ".", true}, {tailcarPlainBin, ".", false}, {loggenBin, "./examples/loggen", false}} {
		args := []string{"build", "-o", b.out}
		if b.race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", b.pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a tailcar process under test, its stdout and stderr in files.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr string
	done           chan struct{}
	code           int
	// killed: sent SIGKILL, which may cut a write short (the kernel stops
	// a write to a file between pages for a fatal signal).
	killed atomic.Bool
}

// baseEnv is the environment every test process starts from: the
// machine's, less any TAILCAR_ or tag variable that would leak in.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TAILCAR_") || strings.HasPrefix(kv, "ALIYUN_") || strings.HasPrefix(kv, "_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// startTailcar runs tailcar, built with the race detector, with env added
// to baseEnv.
func startTailcar(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	return startBinary(t, tailcarBin, env, args...)
}

// startTailcarPlain runs tailcar built without the race detector, for
// tests that measure memory.
func startTailcarPlain(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	return startBinary(t, tailcarPlainBin, env, args...)
}

func startBinary(t *testing.T, bin string, env map[string]string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{t: t, stdout: filepath.Join(dir, "stdout"), stderr: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	out, err := os.Create(p.stdout)
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = baseEnv()
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, errf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		out.Close()
		errf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("tailcar stderr:\n%s", p.stderrText())
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if sig == syscall.SIGKILL {
		p.killed.Store(true)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait returns the exit code, failing the test if it takes past deadline.
func (p *proc) wait(deadline time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(deadline):
		p.t.Fatalf("tailcar still running after %s", deadline)
		return -1
	}
}

func (p *proc) stderrText() string {
	b, _ := os.ReadFile(p.stderr)
	return string(b)
}

// logLine returns tailcar's own log line (stderr) whose message is msg,
// decoded; it fails the test when there is none.
func (p *proc) logLine(msg string) map[string]any {
	p.t.Helper()
	for _, line := range strings.Split(p.stderrText(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["message"] == msg {
			return l
		}
	}
	p.t.Fatalf("no log line %q in stderr:\n%s", msg, p.stderrText())
	return nil
}

// records parses stdout: every line must be one JSON object. While
// tailcar runs, its last line may be half written, and so may the last
// line of one killed with SIGKILL in the middle of a write (those records
// were not acknowledged, so the next run sends them again); once it has
// exited otherwise, stdout must end with a newline.
func (p *proc) records() []map[string]any {
	p.t.Helper()
	running := true
	select {
	case <-p.done:
		running = false
	default:
	}
	return parseRecords(p.t, p.stdout, running || p.killed.Load())
}

func parseRecords(t *testing.T, path string, allowPartial bool) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	complete := data
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 {
		if !allowPartial {
			t.Fatalf("stdout ends with a partial line: %q", data[i+1:])
		}
		complete = data[:i+1]
	}
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(complete))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("stdout line is not a JSON object: %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// waitFor polls cond until it holds or deadline passes.
func waitFor(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func messages(recs []map[string]any) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		m, _ := r["message"].(string)
		out = append(out, m)
	}
	return out
}

// appendLines writes numbered nginx-like lines from..to to path.
func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	for i := from; i <= to; i++ {
		fmt.Fprintf(w, "10.0.0.1 - - [25/Nov/2026:10:00:00 +0000] \"GET /item?seq=%d HTTP/1.1\" 200 512 \"-\" \"test\"\n", i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// runLoggen runs the example generator to completion.
func runLoggen(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(loggenBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("loggen %v: %v\n%s", args, err, out)
	}
}

func requireNoLoss(t *testing.T, c seq.Tally, wantDuplicates bool) {
	t.Helper()
	t.Logf("delivery: %s", c)
	if c.Missing != 0 {
		t.Errorf("%d lines missing, first: %v", c.Missing, c.FirstMissing(20))
	}
	if !wantDuplicates && c.Duplicated != 0 {
		t.Errorf("%d lines duplicated", c.Duplicated)
	}
}

// startServer starts a test server's process and stops it when the test
// ends: stop, then a kill if it has not exited after 20 s. onFail, when
// the test failed, logs what the server said.
func startServer(t *testing.T, cmd *exec.Cmd, stop syscall.Signal, onFail func()) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(stop)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			onFail()
		}
	})
}
