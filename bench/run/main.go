// Command run is `make bench`: it runs tailcar and the floor program on the
// workloads of the performance issue against a receiver on 127.0.0.1 and
// prints one table. It measures; it never fails on speed.
//
//	W1  1,000,000 numbered ~200-byte nginx lines on tmpfs, read from the
//	    start, 2 env tags, NDJSON over HTTP with gzip: lines per CPU-second
//	    (user+sys of the shipper), peak RSS, wall time until the receiver
//	    has every line. The floor does the same with nothing else.
//	W1-nginx, W1-json, W1-drop90, W1-regex: W1 with TAILCAR_PARSE=nginx,
//	    1M slog-shaped JSON lines with TAILCAR_PARSE=json (against the
//	    floor on that file), 90% of W1 dropped by TAILCAR_DROP, and an
//	    nginx-like TAILCAR_PARSE_REGEX.
//	W1-json-es: W1-json with the elasticsearch sink (bulk actions, and
//	    the seeds of unparsed forms), against the receiver's _bulk answer.
//	W1-otlp: W1 shipped with the otlp sink (protobuf LogRecords, gzip).
//	W1-cri: 1M CRI lines (5% split into P+F chunks), TAILCAR_FORMAT=cri,
//	    against the floor on that file.
//	W2  200 files at 50 lines/s each, 20 s.
//	W4-node: 1,000 CRI container files at 5 lines/s each for 60 s, with
//	    TAILCAR_FORMAT=cri and TAILCAR_PATH_TAGS=kubernetes: millicores,
//	    peak RSS, open descriptors and inotify watches.
//	W0  one file and no lines for 30 s: the cost of being there.
//	W3  100 lines/s for 60 s (idle), with metrics off and on, and with
//	    TAILCAR_PARSE=nginx, each beside the floor following the same file
//	    (-follow) in the same window; with -against BIN, that tailcar
//	    build too, each with its own receiver and checkpoints, to compare
//	    two builds in the same minute.
//	Stop: SIGTERM with the backend up, time to exit beyond the drain delay.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/tailcar/tailcar/tailer"
)

func main() {
	tailcar := flag.String("tailcar", "bin/tailcar", "tailcar binary")
	floor := flag.String("floor", "bin/floor", "floor binary")
	lines := flag.Int("lines", 1000000, "W1 lines")
	idle := flag.Duration("idle", 60*time.Second, "W3 duration")
	only := flag.String("only", "", "run only these workloads, comma-separated (W0, W1, W2, W3, W4, stop); for trying a change")
	against := flag.String("against", "", "another tailcar binary that W3 also runs over the same window, for comparing two builds")
	flag.Parse()
	b := &bench{tailcar: *tailcar, floor: *floor, only: *only, against: *against}
	if err := b.run(*lines, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	tailcar, floor, only, against string
	recv, floorRecv, againstRecv  *receiver
	rows                          []row
}

type row struct {
	workload, program       string
	lines                   int
	cpu, wall               time.Duration
	peakRSSKiB              int64
	missing                 int
	linesPerCPUs, millicore float64
	note                    string
}

// receiver decompresses every body and counts lines, and which numbered
// lines arrived, so a run that loses lines cannot pass for a fast one.
type receiver struct {
	addr  string
	count atomic.Int64
	mu    sync.Mutex
	seen  []bool
}

func newReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: l.Addr().String()}
	go http.Serve(l, r)
	return r, nil
}

func (r *receiver) reset(n int) {
	r.mu.Lock()
	r.seen = make([]bool, n+1)
	r.mu.Unlock()
	r.count.Store(0)
}

var seqKey = []byte("seq=")

var bulkAction = []byte(`{"create":`)

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	n := 0
	// The elasticsearch sink's bulk body has an action line before each
	// document, and wants an answer that says every item was created.
	bulk := strings.HasSuffix(req.URL.Path, "/_bulk")
	r.mu.Lock()
	if req.Header.Get("Content-Type") == "application/x-protobuf" {
		// OTLP: protobuf has no line ends; each record's body holds its
		// line, and the line its one "seq=".
		for {
			j := bytes.Index(data, seqKey)
			if j < 0 {
				break
			}
			data = data[j+len(seqKey):]
			v := 0
			for k := 0; k < len(data) && data[k] >= '0' && data[k] <= '9'; k++ {
				v = v*10 + int(data[k]-'0')
			}
			if v < len(r.seen) {
				r.seen[v] = true
			}
			n++
		}
		data = nil
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		line := data[:i]
		data = data[min(i+1, len(data)):]
		if bulk && bytes.HasPrefix(line, bulkAction) {
			continue
		}
		n++
		if j := bytes.Index(line, seqKey); j >= 0 {
			k := j + 4
			v := 0
			for k < len(line) && line[k] >= '0' && line[k] <= '9' {
				v = v*10 + int(line[k]-'0')
				k++
			}
			if v < len(r.seen) {
				r.seen[v] = true
			}
		}
	}
	r.mu.Unlock()
	r.count.Add(int64(n))
	if bulk {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"took":0,"errors":false}`)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) missing(n int) int { return r.missingEvery(n, 1) }

// missingEvery counts the lines 1..n that are multiples of every and did
// not arrive: the lines a filter keeps.
func (r *receiver) missingEvery(n, every int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := 0
	for i := every; i <= n && i < len(r.seen); i += every {
		if !r.seen[i] {
			m++
		}
	}
	return m
}

// nginxLine is one numbered, realistic line of about 200 bytes.
func nginxLine(dst []byte, n int) []byte {
	return fmt.Appendf(dst, "10.%d.%d.%d - - [25/Nov/2026:10:00:00 +0000] \"GET /api/v1/items/%d?seq=%d HTTP/1.1\" 200 %d \"https://shop.example.com/\" \"Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0\"\n",
		n%256, (n/256)%256, n%200, n%9973, n, 200+n%5000)
}

// jsonLine is one numbered line of about 250 bytes, shaped like what
// log/slog's JSON handler writes.
func jsonLine(dst []byte, n int) []byte {
	return fmt.Appendf(dst, `{"time":"2026-11-25T10:00:%02d.%09dZ","level":"INFO","msg":"order placed seq=%d","order_id":"ord-%d","user":{"id":%d,"plan":"pro"},"path":"/api/v1/cart/items","took_ms":%d.5,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`+"\n",
		n%60, n%1000000000, n, n, n%1000, n%300)
}

// criLine is W1's line as containerd writes it; every twentieth is split
// into a P chunk and the F chunk that ends it.
func criLine(dst []byte, n int) []byte {
	const stamp = "2026-11-25T10:00:00.123456789Z"
	line := nginxLine(nil, n)
	if n%20 != 0 {
		dst = append(dst, stamp+" stdout F "...)
		return append(dst, line...)
	}
	half := len(line) / 3
	dst = append(dst, stamp+" stdout P "...)
	dst = append(dst, line[:half]...)
	dst = append(dst, '\n')
	dst = append(dst, stamp+" stdout F "...)
	return append(dst, line[half:]...)
}

func writeLines(path string, from, to int) error {
	return writeWith(path, from, to, nginxLine)
}

func writeWith(path string, from, to int, line func([]byte, int) []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	for i := from; i <= to; i++ {
		buf = line(buf[:0], i)
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// cpuOf reads a running process's CPU time. /proc/<pid>/stat counts in
// 10 ms clock ticks, which is ±0.17 millicores over a 60 s window, as
// coarse as the idle target itself; the scheduler's per-thread run time
// in /proc/<pid>/task/*/schedstat is in nanoseconds, so it is preferred.
// A Go process keeps its threads, so the sum loses nothing to exited ones.
func cpuOf(pid int) time.Duration {
	if d, ok := schedCPU(pid); ok {
		return d
	}
	return tickCPU(pid)
}

func schedCPU(pid int) (time.Duration, bool) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, false
	}
	var sum time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			return 0, false
		}
		f := strings.Fields(string(data))
		if len(f) == 0 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += time.Duration(ns)
	}
	return sum, true
}

// wakeups sums the voluntary context switches of a process's threads:
// each is a thread going to sleep, so it counts the wake-ups an idle
// process costs the machine.
func wakeups(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var sum int64
	for _, t := range tasks {
		data, _ := os.ReadFile(t)
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// tickCPU reads user+sys time in clock ticks.
func tickCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func rssOf(pid int) (cur, peak int64) {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = v
		case "VmHWM:":
			peak = v
		}
	}
	return cur, peak
}

func (b *bench) tailcarEnv(dir string, paths string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"TAILCAR_PATHS=" + paths,
		"TAILCAR_POSITIONS=" + filepath.Join(dir, "positions"),
		"TAILCAR_SINK=http",
		"TAILCAR_SINK_URL=http://" + b.recv.addr + "/",
		"TAILCAR_ENV_TAGS=_pod_name_|_namespace_",
		"_pod_name_=web-7d9f", "_namespace_=shop",
		"TAILCAR_DRAIN_DELAY=0s",
		"TAILCAR_LOG_LEVEL=warn",
	}
	return append(env, extra...)
}

func waitCount(r *receiver, n int, limit time.Duration) bool {
	end := time.Now().Add(limit)
	for r.count.Load() < int64(n) {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// w1Runs is how many times each W1 row is run; the best run is kept.
const w1Runs = 3

// lessCPU returns the run that used less CPU; a zero best is no run yet.
func lessCPU(best, r row) row {
	if best.cpu == 0 || r.cpu < best.cpu {
		return r
	}
	return best
}

// w1Every runs one shipper over the prepared file and measures it, when
// every every-th line is to arrive.
func (b *bench) w1Every(workload, program string, cmd *exec.Cmd, lines, every int) row {
	b.recv.reset(lines)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return row{workload: workload, program: program, note: err.Error()}
	}
	ok := waitCount(b.recv, lines/every, 5*time.Minute)
	wall := time.Since(start)
	if program == "tailcar" {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	r := row{workload: workload, program: program, lines: int(b.recv.count.Load()), cpu: cpu, wall: wall,
		peakRSSKiB: ru.Maxrss, missing: b.recv.missingEvery(lines, every)}
	r.linesPerCPUs = float64(lines) / cpu.Seconds()
	if !ok {
		r.note = "timed out"
	}
	return r
}

// steady runs tailcar while perFileRate lines a second are appended to
// each of files files, and measures its CPU over the window.
func (b *bench) steady(workload string, files, perFileRate int, d time.Duration, extra ...string) row {
	return b.steadyOf(workload, files, perFileRate, d, b.tailcarShipper(extra...))[0]
}

// besideFloor runs a one-file steady workload (W3) with tailcar and the
// floor following the same file at once, each posting to a receiver of its
// own, so that both are measured over the same window: the machine's
// bursts in it fall on both. The floor posts what is new once a second, as
// tailcar's default batch wait does. It returns the floor's row, then
// tailcar's, noted with the difference.
func (b *bench) besideFloor(workload string, rate int, d time.Duration, extra ...string) []row {
	floor := shipper{program: "floor", recv: b.floorRecv, command: func(_, logs string) *exec.Cmd {
		return exec.Command(b.floor, "-follow", "1s", "-file", filepath.Join(logs, "app-000.log"), "-url", "http://"+b.floorRecv.addr+"/")
	}}
	shippers := []shipper{floor, b.tailcarShipper(extra...)}
	if b.against != "" {
		// Its own receiver and checkpoints (the heartbeat sits beside
		// them); the later of two equal keys in a command's Env wins.
		shippers = append(shippers, shipper{program: "against", recv: b.againstRecv, command: func(dir, logs string) *exec.Cmd {
			cmd := exec.Command(b.against)
			cmd.Env = append(b.tailcarEnv(dir, filepath.Join(logs, "*.log"), extra...),
				"TAILCAR_SINK_URL=http://"+b.againstRecv.addr+"/", "TAILCAR_POSITIONS="+filepath.Join(dir, "positions-against"))
			for _, kv := range extra {
				if strings.HasPrefix(kv, "TAILCAR_METRICS_ADDR=") {
					cmd.Env = append(cmd.Env, "TAILCAR_METRICS_ADDR="+freeAddr())
				}
			}
			return cmd
		}})
	}
	rows := b.steadyOf(workload, 1, rate, d, shippers...)
	if len(rows) < len(shippers) {
		return rows // one did not start: the row says why
	}
	for i := 1; i < len(rows); i++ {
		rows[i].note = fmt.Sprintf("floor + %.2f millicores; %s", rows[i].millicore-rows[0].millicore, rows[i].note)
	}
	if len(rows) > 2 {
		rows[2].note = fmt.Sprintf("%s than -tailcar's %.2f; %s", againstDiff(rows[2].millicore-rows[1].millicore), rows[1].millicore, rows[2].note)
	}
	return rows
}

// againstDiff says how an -against build's millicores compare with the
// -tailcar build's.
func againstDiff(d float64) string {
	if d < 0 {
		return fmt.Sprintf("%.2f millicores fewer", -d)
	}
	return fmt.Sprintf("%.2f millicores more", d)
}

// shipper is a program steadyOf runs: command makes it for the run's
// directory (dir) and the directory of its files (logs).
type shipper struct {
	program string
	recv    *receiver
	command func(dir, logs string) *exec.Cmd
}

func (b *bench) tailcarShipper(extra ...string) shipper {
	return shipper{program: "tailcar", recv: b.recv, command: func(dir, logs string) *exec.Cmd {
		cmd := exec.Command(b.tailcar)
		cmd.Env = b.tailcarEnv(dir, filepath.Join(logs, "*.log"), extra...)
		return cmd
	}}
}

// steadyOf runs the shippers at once while lines are appended at a steady
// rate to files (app-000.log, app-001.log, … which exist before they
// start), and measures each one's CPU over the same window.
func (b *bench) steadyOf(workload string, files, perFileRate int, d time.Duration, shippers ...shipper) []row {
	dir, _ := os.MkdirTemp("", "tailcar-bench")
	defer os.RemoveAll(dir)
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	total := int(float64(files*perFileRate) * d.Seconds())
	handles := make([]*os.File, files)
	for i := range handles {
		handles[i], _ = os.OpenFile(filepath.Join(logs, fmt.Sprintf("app-%03d.log", i)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	// Two tailcars on one file (-against): the first sees the second open
	// it, and reads it at every change for a risk window, as after a
	// copier's open (about 1,700 thread switches). An empty file is opened
	// at its first write (it may be a copy being written), so each file
	// gets a line now, both open it at their start, and the window opens
	// after the risk window; the receivers forget that line.
	warmup := 500 * time.Millisecond
	tailcars := 0
	for _, s := range shippers {
		if s.program != "floor" {
			tailcars++
		}
	}
	if tailcars > 1 {
		warmup += tailer.DefaultRiskWindow + 2*time.Second
		for _, h := range handles {
			h.WriteString("warm-up line, before the window\n")
		}
	}
	type running struct {
		shipper
		cmd             *exec.Cmd
		cpu0, ticks0    time.Duration
		wake0           int64
		sliceCPU        time.Duration
		sliceMillicores []float64
		cpu, ticks      time.Duration
		wake            int64
	}
	runs := make([]*running, len(shippers))
	for i, s := range shippers {
		s.recv.reset(total)
		r := &running{shipper: s, cmd: s.command(dir, logs)}
		r.cmd.Stderr = os.Stderr
		if err := r.cmd.Start(); err != nil {
			return []row{{workload: workload, program: s.program, note: err.Error()}}
		}
		defer func() {
			r.cmd.Process.Signal(syscall.SIGTERM)
			r.cmd.Wait()
		}()
		runs[i] = r
	}
	time.Sleep(warmup) // let them start before the window opens
	if tailcars > 1 {
		for _, r := range runs {
			r.recv.reset(total)
		}
	}
	for _, r := range runs {
		pid := r.cmd.Process.Pid
		r.cpu0, r.ticks0, r.wake0 = cpuOf(pid), tickCPU(pid), wakeups(pid)
		r.sliceCPU = r.cpu0
	}
	start := time.Now()
	// Write on a schedule: every 10 ms, what is due, one write per line.
	var buf []byte
	n := 0
	// The CPU is also read every cpuSlice: a noisy neighbour's burst
	// raises one slice, a cost of tailcar's raises them all.
	sliceAt := start
	tick := time.NewTicker(10 * time.Millisecond)
	for now := range tick.C {
		due := int(float64(total) * min(now.Sub(start).Seconds()/d.Seconds(), 1))
		for ; n < due; n++ {
			buf = nginxLine(buf[:0], n+1)
			handles[n%files].Write(buf)
		}
		if elapsed := now.Sub(sliceAt); elapsed >= cpuSlice {
			for _, r := range runs {
				c := cpuOf(r.cmd.Process.Pid)
				r.sliceMillicores = append(r.sliceMillicores, (c-r.sliceCPU).Seconds()/elapsed.Seconds()*1000)
				r.sliceCPU = c
			}
			sliceAt = now
		}
		if n >= total && now.Sub(start) >= d {
			break
		}
	}
	tick.Stop()
	window := time.Since(start)
	for _, r := range runs {
		pid := r.cmd.Process.Pid
		r.cpu, r.ticks, r.wake = cpuOf(pid)-r.cpu0, tickCPU(pid)-r.ticks0, wakeups(pid)-r.wake0
	}
	rows := make([]row, len(runs))
	for i, r := range runs {
		waitCount(r.recv, total, 30*time.Second)
		rss, peak := rssOf(r.cmd.Process.Pid)
		rows[i] = row{workload: workload, program: r.program, lines: int(r.recv.count.Load()), cpu: r.cpu, wall: window,
			peakRSSKiB: peak, missing: r.recv.missing(total)}
		rows[i].millicore = r.cpu.Seconds() / window.Seconds() * 1000
		rows[i].note = fmt.Sprintf("RSS at end %.1f MiB; %.1f thread sleeps/s; %.2f millicores in 10 ms ticks%s",
			float64(rss)/1024, float64(r.wake)/window.Seconds(), r.ticks.Seconds()/window.Seconds()*1000, sliceSummary(r.sliceMillicores))
	}
	return rows
}

// cpuSlice is how often steady reads the CPU within its window.
const cpuSlice = 5 * time.Second

// sliceSummary describes the millicores of a window's slices: their
// median, which a burst in one slice does not move, and their range.
func sliceSummary(millicores []float64) string {
	if len(millicores) < 3 {
		return ""
	}
	sorted := slices.Clone(millicores)
	slices.Sort(sorted)
	return fmt.Sprintf("; %d slices of %s: median %.2f millicores, %.2f–%.2f",
		len(sorted), cpuSlice, sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1])
}

// node runs W4-node: files CRI container logs in the kubelet's layout,
// each written at rate lines a second, followed through the
// /var/log/containers links with path tags, as the DaemonSet does.
func (b *bench) node(files, rate int, d time.Duration) row {
	dir, _ := os.MkdirTemp("", "tailcar-bench-node")
	defer os.RemoveAll(dir)
	pods, containers := filepath.Join(dir, "pods"), filepath.Join(dir, "containers")
	os.MkdirAll(containers, 0o755)
	handles := make([]*os.File, files)
	for i := range handles {
		podDir := filepath.Join(pods, fmt.Sprintf("shop_web-%d_uid-%d", i, i), "app")
		os.MkdirAll(podDir, 0o755)
		log := filepath.Join(podDir, "0.log")
		handles[i], _ = os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		os.Symlink(log, filepath.Join(containers, fmt.Sprintf("web-%d_shop_app-%064d.log", i, i)))
	}
	total := int(float64(files*rate) * d.Seconds())
	b.recv.reset(total)
	cmd := exec.Command(b.tailcar)
	cmd.Env = b.tailcarEnv(dir, filepath.Join(containers, "*.log"), "TAILCAR_FORMAT=cri", "TAILCAR_PATH_TAGS=kubernetes",
		"TAILCAR_SYMLINK_ROOTS="+pods, "TAILCAR_ENV_TAGS=_node_name_", "_node_name_=node-1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return row{workload: "W4-node", program: "tailcar", note: err.Error()}
	}
	time.Sleep(time.Second) // let it find the files before the window opens
	pid := cmd.Process.Pid
	cpu0 := cpuOf(pid)
	start := time.Now()
	var buf []byte
	n := 0
	tick := time.NewTicker(10 * time.Millisecond)
	for now := range tick.C {
		due := int(float64(total) * min(now.Sub(start).Seconds()/d.Seconds(), 1))
		for ; n < due; n++ {
			buf = append(buf[:0], "2026-11-25T10:00:00.123456789Z stdout F "...)
			buf = nginxLine(buf, n+1)
			handles[n%files].Write(buf)
		}
		if n >= total && now.Sub(start) >= d {
			break
		}
	}
	tick.Stop()
	window := time.Since(start)
	cpu := cpuOf(pid) - cpu0
	waitCount(b.recv, total, 60*time.Second)
	fds, watches := descriptors(pid)
	_, peak := rssOf(pid)
	for _, h := range handles {
		h.Close()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	r := row{workload: "W4-node", program: "tailcar", lines: int(b.recv.count.Load()), cpu: cpu, wall: window,
		peakRSSKiB: peak, missing: b.recv.missing(total)}
	r.millicore = cpu.Seconds() / window.Seconds() * 1000
	r.note = fmt.Sprintf("%d files; %d descriptors open, %d inotify watches at the end", files, fds, watches)
	return r
}

// freeAddr is a loopback address with a port free now (tailcar refuses
// port 0: a metrics port must be known to be scraped).
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:2020"
	}
	defer l.Close()
	return l.Addr().String()
}

// descriptors counts a process's open descriptors and inotify watches.
func descriptors(pid int) (fds, watches int) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		fds++
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		watches += strings.Count(string(info), "inotify wd:")
	}
	return fds, watches
}

// stop measures the time from SIGTERM to exit beyond the drain delay,
// with the backend up and lines flowing.
func (b *bench) stop() row {
	dir, _ := os.MkdirTemp("", "tailcar-bench")
	defer os.RemoveAll(dir)
	log := filepath.Join(dir, "app.log")
	writeLines(log, 1, 10000)
	b.recv.reset(10000)
	const delay = time.Second
	cmd := exec.Command(b.tailcar)
	cmd.Env = b.tailcarEnv(dir, log, "TAILCAR_DRAIN_DELAY="+delay.String())
	cmd.Start()
	waitCount(b.recv, 10000, time.Minute)
	writeLines(log, 10001, 10100)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	took := time.Since(start)
	return row{workload: "stop", program: "tailcar", wall: took, missing: b.recv.missing(10100), lines: int(b.recv.count.Load()),
		note: fmt.Sprintf("exit %d; %s after the %s drain delay", cmd.ProcessState.ExitCode(), (took - delay).Round(time.Millisecond), delay)}
}

func (b *bench) run(lines int, idle time.Duration) error {
	var err error
	if b.recv, err = newReceiver(); err != nil {
		return err
	}
	if b.floorRecv, err = newReceiver(); err != nil {
		return err
	}
	if b.against != "" {
		if b.againstRecv, err = newReceiver(); err != nil {
			return err
		}
	}
	if b.want("W1") {
		shm := "/dev/shm"
		if _, err := os.Stat(shm); err != nil {
			shm = os.TempDir()
		}
		dir, err := os.MkdirTemp(shm, "tailcar-bench-w1")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		file := filepath.Join(dir, "w1.log")
		fmt.Fprintf(os.Stderr, "W1: writing %d lines to %s\n", lines, file)
		if err := writeLines(file, 1, lines); err != nil {
			return err
		}
		// Floor and tailcar alternate, w1Runs times each; the best run of
		// each is kept, since a noisy neighbour only ever makes a run
		// slower, and alternating puts a noisy minute on both.
		floorRun := func(workload, file string, i int) row {
			r := b.w1Every(workload, "floor", exec.Command(b.floor, "-file", file, "-url", "http://"+b.recv.addr+"/"), lines, 1)
			fmt.Fprintf(os.Stderr, "%s: floor, run %d: %.2f CPU-s\n", workload, i+1, r.cpu.Seconds())
			return r
		}
		tailcarRun := func(workload, file string, every, i int, extra ...string) row {
			pos, _ := os.MkdirTemp("", "tailcar-bench-pos")
			defer os.RemoveAll(pos)
			cmd := exec.Command(b.tailcar)
			cmd.Env = b.tailcarEnv(pos, file, extra...)
			cmd.Stderr = os.Stderr
			r := b.w1Every(workload, "tailcar", cmd, lines, every)
			fmt.Fprintf(os.Stderr, "%s: tailcar, run %d: %.2f CPU-s\n", workload, i+1, r.cpu.Seconds())
			return r
		}
		var floorBest, tailBest row
		for i := range w1Runs {
			floorBest = lessCPU(floorBest, floorRun("W1", file, i))
			tailBest = lessCPU(tailBest, tailcarRun("W1", file, 1, i))
		}
		tailBest.note = fmt.Sprintf("%.2f × floor", tailBest.linesPerCPUs/floorBest.linesPerCPUs)
		b.rows = append(b.rows, floorBest, tailBest)

		// The parsing rows, each the best of w1Runs, against the floor of
		// this run on the same file.
		variant := func(workload, file string, floor row, every int, extra ...string) {
			var best row
			for i := range w1Runs {
				best = lessCPU(best, tailcarRun(workload, file, every, i, extra...))
			}
			best.note = fmt.Sprintf("%.2f × floor", best.linesPerCPUs/floor.linesPerCPUs)
			b.rows = append(b.rows, best)
		}
		variant("W1-nginx", file, floorBest, 1, "TAILCAR_PARSE=nginx")
		variant("W1-drop90", file, floorBest, 10, `TAILCAR_DROP=seq=\d*[1-9] `)
		variant("W1-otlp", file, floorBest, 1, "TAILCAR_SINK=otlp")
		variant("W1-regex", file, floorBest, 1, "TAILCAR_PARSE=regex",
			`TAILCAR_PARSE_REGEX=^(?P<remote_addr>\S+) \S+ (?P<remote_user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d+) (?P<body_bytes_sent>\d+)`,
			"TAILCAR_TIME_FORMAT=02/Jan/2006:15:04:05 -0700")

		// Workloads on a file of their own, each against the floor on it,
		// the two alternating as W1's do; then any variants on that file.
		onOwnFile := func(workload, name string, line func([]byte, int) []byte, extra string, variants ...[]string) error {
			path := filepath.Join(dir, name)
			defer os.Remove(path)
			fmt.Fprintf(os.Stderr, "%s: writing %d lines to %s\n", workload, lines, path)
			if err := writeWith(path, 1, lines, line); err != nil {
				return err
			}
			var floor, best row
			for i := range w1Runs {
				floor = lessCPU(floor, floorRun(workload, path, i))
				best = lessCPU(best, tailcarRun(workload, path, 1, i, extra))
			}
			best.note = fmt.Sprintf("%.2f × floor", best.linesPerCPUs/floor.linesPerCPUs)
			b.rows = append(b.rows, floor, best)
			for _, v := range variants {
				variant(v[0], path, floor, 1, v[1:]...)
			}
			return nil
		}
		// W1-json-es: the elasticsearch sink, which also keeps each parsed
		// record's unparsed form for a mapping conflict.
		if err := onOwnFile("W1-json", "w1.json", jsonLine, "TAILCAR_PARSE=json",
			[]string{"W1-json-es", "TAILCAR_PARSE=json", "TAILCAR_SINK=elasticsearch"}); err != nil {
			return err
		}
		if err := onOwnFile("W1-cri", "w1.cri", criLine, "TAILCAR_FORMAT=cri"); err != nil {
			return err
		}
	}

	if b.want("W2") {
		fmt.Fprintln(os.Stderr, "W2: 200 files at 50 lines/s, 20 s")
		b.rows = append(b.rows, b.steady("W2", 200, 50, 20*time.Second))
	}
	if b.want("W0") {
		fmt.Fprintln(os.Stderr, "W0: one file, no lines, 30 s")
		b.rows = append(b.rows, b.steady("W0", 1, 0, 30*time.Second))
	}
	if b.want("W3") {
		fmt.Fprintf(os.Stderr, "W3: 100 lines/s for %s, metrics off, beside the floor\n", idle)
		b.rows = append(b.rows, b.besideFloor("W3", 100, idle)...)
		fmt.Fprintf(os.Stderr, "W3: 100 lines/s for %s, metrics on, beside the floor\n", idle)
		b.rows = append(b.rows, b.besideFloor("W3+metrics", 100, idle, "TAILCAR_METRICS_ADDR="+freeAddr())...)
		fmt.Fprintf(os.Stderr, "W3: 100 lines/s for %s, TAILCAR_PARSE=nginx, beside the floor\n", idle)
		b.rows = append(b.rows, b.besideFloor("W3-nginx", 100, idle, "TAILCAR_PARSE=nginx")...)
	}
	if b.want("W4") {
		fmt.Fprintln(os.Stderr, "W4-node: 1,000 container files at 5 lines/s, 60 s")
		b.rows = append(b.rows, b.node(1000, 5, 60*time.Second))
	}
	if b.want("stop") {
		fmt.Fprintln(os.Stderr, "stop: SIGTERM with the backend up")
		b.rows = append(b.rows, b.stop())
	}
	b.print(lines)
	return nil
}

func (b *bench) want(workload string) bool {
	return b.only == "" || slices.Contains(strings.Split(b.only, ","), workload)
}

func (b *bench) print(lines int) {
	host, _ := os.Hostname()
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	fmt.Printf("\nmake bench on %s: %d cores, %s, %s\n\n", host, runtime.NumCPU(), model, runtime.Version())
	fmt.Println("| workload | program | lines received | missing | CPU-s | lines per CPU-s | millicores | peak RSS | wall | note |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range b.rows {
		lps, mc := "", ""
		if r.linesPerCPUs > 0 {
			lps = fmt.Sprintf("%.0fk", r.linesPerCPUs/1000)
		}
		if r.millicore > 0 {
			mc = fmt.Sprintf("%.2f", r.millicore)
		}
		rss := ""
		if r.peakRSSKiB > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(r.peakRSSKiB)/1024)
		}
		fmt.Printf("| %s | %s | %d | %d | %.2f | %s | %s | %s | %s | %s |\n",
			r.workload, r.program, r.lines, r.missing, r.cpu.Seconds(), lps, mc, rss, r.wall.Round(time.Millisecond), r.note)
	}
}
