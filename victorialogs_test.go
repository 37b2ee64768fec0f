package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailcar/tailcar/enrich"
	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// victoriaLogs is a real VictoriaLogs server on 127.0.0.1, installed by
// `make test` (go install of a pinned version) and named by
// TAILCAR_VICTORIALOGS. It can be stopped and started again on the same
// port and data, as a backend outage.
type victoriaLogs struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func victoriaLogsBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("TAILCAR_VICTORIALOGS")
	if bin == "" {
		t.Skip("TAILCAR_VICTORIALOGS is not set; `make test` installs VictoriaLogs and sets it")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("TAILCAR_VICTORIALOGS=%s: %v", bin, err)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startVictoriaLogs(t *testing.T) *victoriaLogs {
	t.Helper()
	vl := &victoriaLogs{t: t, bin: victoriaLogsBinary(t), dir: t.TempDir(), addr: freePort(t)}
	vl.start()
	t.Cleanup(vl.stop)
	return vl
}

func (vl *victoriaLogs) start() {
	vl.t.Helper()
	vl.cmd = exec.Command(vl.bin, "-httpListenAddr="+vl.addr, "-storageDataPath="+filepath.Join(vl.dir, "data"),
		"-retentionPeriod=100y", "-loggerLevel=WARN")
	vl.cmd.Stdout, vl.cmd.Stderr = nil, nil
	if err := vl.cmd.Start(); err != nil {
		vl.t.Fatal(err)
	}
	vl.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(vl.cmd, vl.done)
	waitFor(vl.t, 30*time.Second, "VictoriaLogs to be ready", func() bool {
		resp, err := http.Get("http://" + vl.addr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (vl *victoriaLogs) stop() {
	if vl.cmd == nil {
		return
	}
	_ = vl.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-vl.done:
	case <-time.After(20 * time.Second):
		_ = vl.cmd.Process.Kill()
		<-vl.done
	}
	vl.cmd = nil
}

// rows returns every stored row as a map, after making new data visible.
func (vl *victoriaLogs) rows() []map[string]any {
	vl.t.Helper()
	return vl.query("*")
}

// query returns the rows a LogsQL query selects, after making new data
// visible.
func (vl *victoriaLogs) query(q string) []map[string]any {
	vl.t.Helper()
	resp, err := http.Get("http://" + vl.addr + "/internal/force_flush")
	if err != nil {
		vl.t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.PostForm("http://"+vl.addr+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		vl.t.Fatal(err)
	}
	defer resp.Body.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			vl.t.Fatalf("query row %q: %v", sc.Text(), err)
		}
		rows = append(rows, r)
	}
	return rows
}

// rowFields returns a row's fields, with the fields of a JSON _msg (the
// loki sink ships the whole record as the line) merged in.
func rowFields(r map[string]any) map[string]any {
	out := make(map[string]any, len(r))
	for k, v := range r {
		out[k] = v
	}
	if msg, ok := r["_msg"].(string); ok && strings.HasPrefix(msg, "{") {
		var inner map[string]any
		if json.Unmarshal([]byte(msg), &inner) == nil {
			for k, v := range inner {
				out[k] = v
			}
			out["_msg"], _ = inner["message"].(string)
		}
	}
	return out
}

// peakRSS reads a process's VmHWM in KiB.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return kb
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// Ensure each network sink delivers every line to a real VictoriaLogs,
// with every tag (OTLP's as resource attributes), across a 10 s outage of the backend, with bounded memory,
// and exits 0 after SIGTERM.
func TestSinks_VictoriaLogsOutage(t *testing.T) {
	victoriaLogsBinary(t)
	for _, sink := range []struct{ name, path string }{
		{"elasticsearch", "/insert/elasticsearch?_msg_field=message&_time_field=@timestamp"},
		{"loki", "/insert?_msg_field=message"},
		{"http", "/insert/jsonline?_msg_field=message&_time_field=@timestamp"},
		// OTLP: <url>/v1/logs is VictoriaLogs' /insert/opentelemetry/v1/logs.
		{"otlp", "/insert/opentelemetry"},
	} {
		t.Run(sink.name, func(t *testing.T) {
			t.Parallel()
			vl := startVictoriaLogs(t)
			dir := t.TempDir()
			log := filepath.Join(dir, "access.log")
			const rate, total = 2500, 50000 // 20 s of lines; 25,000 queued on disk during the outage
			p := startTailcarPlain(t, withEnv(podEnv, map[string]string{
				"TAILCAR_PATHS":       log,
				"TAILCAR_ENV_TAGS":    allEnvTags,
				"TAILCAR_TAGS":        "cluster=prod-eu",
				"TAILCAR_SINK":        sink.name,
				"TAILCAR_SINK_URL":    "http://" + vl.addr + sink.path,
				"TAILCAR_BATCH_WAIT":  "200ms",
				"TAILCAR_DRAIN_DELAY": "1s",
			}))
			gen := exec.Command(loggenBin, "--path", log, "--total-count", strconv.Itoa(total), "--logs-per-sec", strconv.Itoa(rate))
			if err := gen.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "the first lines to arrive", func() bool { return len(vl.rows()) > 0 })
			vl.stop()
			outage := time.Now()
			waitFor(t, 30*time.Second, "tailcar to notice the outage", func() bool { return strings.Contains(p.stderrText(), "send failed") })
			// The outage lasts 10 s, however long noticing it took.
			time.Sleep(time.Until(outage.Add(10 * time.Second)))
			vl.start()
			if err := gen.Wait(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, "every line in VictoriaLogs", func() bool { return len(vl.rows()) >= total })
			rss := peakRSS(t, p.cmd.Process.Pid)
			p.signal(syscall.SIGTERM)
			if code := p.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0", code)
			}
			rows := vl.rows()
			var msgs []string
			for i, r := range rows {
				f := rowFields(r)
				msg, _ := f["_msg"].(string)
				msgs = append(msgs, msg)
				for k, v := range withEnv(podEnv, map[string]string{"cluster": "prod-eu"}) {
					if name, ok := enrich.ResourceNames[k]; ok && sink.name == "otlp" {
						k = name // resource attributes, named by the semantic conventions
					}
					if f[k] != v {
						t.Fatalf("row %d: %s = %v, want %q: %v", i, k, f[k], v, r)
					}
				}
			}
			c := seq.Count(msgs, total)
			t.Logf("%s through a 10 s outage: %s; peak RSS %.1f MiB", sink.name, c, float64(rss)/1024)
			if c.Missing != 0 {
				t.Errorf("%d lines missing, first %v", c.Missing, c.FirstMissing(20))
			}
			if !strings.Contains(p.stderrText(), "backend recovered") {
				t.Error("the recovery was not logged")
			}
			if n := strings.Count(p.stderrText(), "send failed, retrying"); n != 1 {
				t.Errorf("the outage was logged %d times, want once", n)
			}
			if rss > 64<<10 {
				t.Errorf("peak RSS %d KiB, want under 64 MiB", rss)
			}
		})
	}
}

// Ensure the loki sink in node mode gives each Pod's container logs a
// stream of their own, labelled from the kubelet's paths, in a real
// VictoriaLogs (its Loki push endpoint): every numbered line once, each in
// its Pod's stream and no other, with the node's tag on every stream.
func TestSinks_LokiStreamPerPodInNodeMode(t *testing.T) {
	vl := startVictoriaLogs(t)
	dir := t.TempDir()
	pods := []string{"web-1", "web-2", "db-0"}
	files := make([]string, len(pods))
	for i, pod := range pods {
		files[i] = filepath.Join(dir, "pods", fmt.Sprintf("shop_%s_uid-%d", pod, i), "app", "0.log")
		if err := os.MkdirAll(filepath.Dir(files[i]), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Each Pod's lines are numbered 1..perPod, in containerd's CRI form;
	// every tenth is split into a P and an F chunk, as runtimes split
	// long lines.
	const perPod, rounds = 600, 6
	write := func(round int) {
		for i, pod := range pods {
			var b strings.Builder
			for n := round*perPod/rounds + 1; n <= (round+1)*perPod/rounds; n++ {
				stamp := time.Now().UTC().Format(time.RFC3339Nano)
				if n%10 == 0 {
					fmt.Fprintf(&b, "%s stdout P pod %s seq=%d (split", stamp, pod, n)
					fmt.Fprintf(&b, "\n%s stdout F  here)\n", stamp)
					continue
				}
				fmt.Fprintf(&b, "%s stdout F pod %s seq=%d\n", stamp, pod, n)
			}
			f, err := os.OpenFile(files[i], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(b.String()); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	write(0) // a backlog before tailcar starts
	p := startTailcarPlain(t, map[string]string{
		"TAILCAR_PATHS":       filepath.Join(dir, "pods", "*", "*", "*.log"),
		"TAILCAR_POSITIONS":   filepath.Join(dir, "positions"),
		"TAILCAR_FORMAT":      "cri",
		"TAILCAR_PATH_TAGS":   "kubernetes",
		"TAILCAR_ENV_TAGS":    "_node_name_",
		"_node_name_":         "node-1",
		"TAILCAR_SINK":        "loki",
		"TAILCAR_SINK_URL":    "http://" + vl.addr + "/insert?_msg_field=message",
		"TAILCAR_LOKI_LABELS": "_namespace_,_pod_name_,_container_name_,_node_name_",
		"TAILCAR_BATCH_WAIT":  "200ms",
		"TAILCAR_DRAIN_DELAY": "1s",
	})
	for round := 1; round < rounds; round++ {
		write(round)
		waitFor(t, 30*time.Second, "the round's lines", func() bool { return len(vl.rows()) >= (round+1)*perPod*len(pods)/rounds })
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	for _, pod := range pods {
		rows := vl.query(fmt.Sprintf(`_stream:{_pod_name_=%q}`, pod))
		var msgs []string
		for _, r := range rows {
			f := rowFields(r)
			msg, _ := f["_msg"].(string)
			if !strings.HasPrefix(msg, "pod "+pod+" ") || f["_pod_name_"] != pod {
				t.Fatalf("in %s's stream: %v", pod, f)
			}
			want := fmt.Sprintf(`{_container_name_="app",_namespace_="shop",_node_name_="node-1",_pod_name_=%q}`, pod)
			if r["_stream"] != want {
				t.Fatalf("stream %v, want %s", r["_stream"], want)
			}
			msgs = append(msgs, msg)
		}
		c := seq.Count(msgs, perPod)
		t.Logf("%s's stream: %s", pod, c)
		if c.Missing != 0 || c.Duplicated != 0 || c.Received != perPod {
			t.Errorf("%s: want each of its %d lines once", pod, perPod)
		}
	}
	if n := len(vl.rows()); n != perPod*len(pods) {
		t.Errorf("%d rows in all, want %d", n, perPod*len(pods))
	}
}
