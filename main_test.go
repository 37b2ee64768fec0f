package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tailcar/tailcar/examples/loggen/seq"
	"github.com/tailcar/tailcar/probe"
)

var podEnv = map[string]string{
	"_pod_name_": "web-7d9f", "_pod_ip_": "10.1.2.3", "_namespace_": "shop",
	"_node_name_": "node-1", "_node_ip_": "192.0.2.10",
}

const allEnvTags = "_pod_name_|_pod_ip_|_namespace_|_node_name_|_node_ip_"

func withEnv(base map[string]string, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// requireTags checks every record carries every pod tag and static tag.
func requireTags(t *testing.T, recs []map[string]any, static map[string]string) {
	t.Helper()
	for i, r := range recs {
		for k, v := range podEnv {
			if r[k] != v {
				t.Fatalf("record %d: %s = %v, want %q: %v", i, k, r[k], v, r)
			}
		}
		for k, v := range static {
			if r[k] != v {
				t.Fatalf("record %d: static tag %s = %v, want %q", i, k, r[k], v)
			}
		}
		ts, _ := r["@timestamp"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.Contains(ts, ".") || !strings.HasSuffix(ts, "Z") {
			t.Fatalf("record %d: @timestamp %q is not RFC 3339 UTC with sub-second digits", i, ts)
		}
		if _, ok := r["file"].(string); !ok {
			t.Fatalf("record %d has no file: %v", i, r)
		}
	}
}

// Ensure lines on disk at start, appended while running, and appended
// during the drain delay after SIGTERM are all shipped exactly once with
// every tag, and that tailcar exits 0 no sooner than the delay.
func TestRun_ShipsExistingAppendedAndDrainDelayLines(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "access.log")
	appendLines(t, log, 1, 1000)
	const delay = 2 * time.Second
	p := startTailcar(t, withEnv(podEnv, map[string]string{
		"TAILCAR_PATHS":       filepath.Join(dir, "*.log"),
		"TAILCAR_ENV_TAGS":    allEnvTags,
		"TAILCAR_TAGS":        "cluster=prod-eu,team=shop",
		"TAILCAR_DRAIN_DELAY": delay.String(),
		"TAILCAR_BATCH_WAIT":  "100ms",
	}))
	waitFor(t, 20*time.Second, "the 1000 lines on disk", func() bool { return len(p.records()) >= 1000 })

	runLoggen(t, "--path", log, "--total-count", "1000", "--start-seq", "1001", "--logs-per-sec", "0")
	waitFor(t, 20*time.Second, "the 1000 appended lines", func() bool { return len(p.records()) >= 2000 })

	p.signal(syscall.SIGTERM)
	signalled := time.Now()
	waitFor(t, 10*time.Second, "the drain to begin", func() bool { return strings.Contains(p.stderrText(), "drain begun") })
	runLoggen(t, "--path", log, "--total-count", "200", "--start-seq", "2001", "--logs-per-sec", "400")

	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if took := time.Since(signalled); took < delay {
		t.Errorf("exited %s after SIGTERM, before the %s drain delay", took, delay)
	}
	recs := p.records()
	requireNoLoss(t, seq.Count(messages(recs), 2200), false)
	if len(recs) != 2200 {
		t.Errorf("got %d records, want 2200", len(recs))
	}
	requireTags(t, recs, map[string]string{"cluster": "prod-eu", "team": "shop"})

	// Durations in tailcar's own logs carry their unit.
	if got := p.logLine("drain begun")["delay"]; got != delay.String() {
		t.Errorf("drain begun: delay %v, want %q", got, delay.String())
	}
	ended := p.logLine("drain ended")
	for _, key := range []string{"drain_took", "uptime"} {
		if s, ok := ended[key].(string); !ok {
			t.Errorf("drain ended: %s is %v, want a duration such as \"1.5s\"", key, ended[key])
		} else if _, err := time.ParseDuration(s); err != nil {
			t.Errorf("drain ended: %s: %v", key, err)
		}
	}
}

// Ensure a logtail sidecar's env works unchanged: with only
// ALIYUN_LOG_ENV_TAGS set, the same tags appear.
func TestRun_AliyunEnvTagsFallback(t *testing.T) {
	dir := t.TempDir()
	appendLines(t, filepath.Join(dir, "app.log"), 1, 50)
	p := startTailcar(t, withEnv(podEnv, map[string]string{
		"TAILCAR_PATHS":       filepath.Join(dir, "*.log"),
		"ALIYUN_LOG_ENV_TAGS": allEnvTags,
		"TAILCAR_DRAIN_DELAY": "0s",
	}))
	waitFor(t, 20*time.Second, "50 records", func() bool { return len(p.records()) >= 50 })
	p.signal(syscall.SIGTERM)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	recs := p.records()
	requireNoLoss(t, seq.Count(messages(recs), 50), false)
	requireTags(t, recs, nil)
}

// Ensure the exit file (Jobs on clusters without native sidecars) starts
// the drain, everything written before it is shipped, and the exit is 0.
func TestRun_ExitFileDrainsAndExitsZero(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "job.log")
	done := filepath.Join(dir, "done")
	p := startTailcar(t, withEnv(podEnv, map[string]string{
		"TAILCAR_PATHS":       log,
		"TAILCAR_ENV_TAGS":    allEnvTags,
		"TAILCAR_EXIT_ON":     done,
		"TAILCAR_DRAIN_DELAY": "1s",
	}))
	waitFor(t, 10*time.Second, "tailcar to start", func() bool { return strings.Contains(p.stderrText(), "tailcar started") })
	runLoggen(t, "--path", log, "--total-count", "500", "--logs-per-sec", "1000", "--done-file", done)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if !strings.Contains(p.stderrText(), "exit file") {
		t.Errorf("the drain was not started by the exit file:\n%s", p.stderrText())
	}
	recs := p.records()
	requireNoLoss(t, seq.Count(messages(recs), 500), false)
	requireTags(t, recs, nil)
}

func runProbe(t *testing.T, env map[string]string) (int, string) {
	t.Helper()
	cmd := exec.Command(tailcarBin, "probe")
	cmd.Env = baseEnv()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return code, strings.TrimSpace(string(out))
}

// Ensure the probe is healthy for an idle instance, unhealthy once a
// frozen one has shown no life for TAILCAR_PROBE_MAX_AGE, healthy again
// after SIGCONT, and unhealthy after kill -9.
func TestProbe_FollowsTheRunnersLife(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"TAILCAR_PATHS":         filepath.Join(dir, "*.log"),
		"TAILCAR_PROBE_MAX_AGE": "2s",
	}
	if code, why := runProbe(t, env); code != 1 {
		t.Fatalf("probe before start: exit %d (%s), want 1", code, why)
	}
	p := startTailcar(t, env)
	waitFor(t, 10*time.Second, "a healthy probe", func() bool { code, _ := runProbe(t, env); return code == 0 })

	p.signal(syscall.SIGSTOP)
	waitFor(t, 15*time.Second, "an unhealthy probe while frozen", func() bool { code, _ := runProbe(t, env); return code == 1 })
	_, why := runProbe(t, env)
	if !strings.Contains(why, "frozen") {
		t.Errorf("probe says %q; want it to say why", why)
	}

	p.signal(syscall.SIGCONT)
	waitFor(t, 10*time.Second, "a healthy probe after SIGCONT", func() bool { code, _ := runProbe(t, env); return code == 0 })

	p.signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
	if code, why := runProbe(t, env); code != 1 {
		t.Fatalf("probe after kill -9: exit %d (%s), want 1", code, why)
	}
}

// backendFailing starts tailcar shipping to url, a backend that fails,
// with a 2 s probe limit and no drain delay. The lines fill more than every
// batch buffer, so the follower too ends up waiting on the backend.
func backendFailing(t *testing.T, url string) (*proc, map[string]string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "app.log")
	appendLines(t, log, 1, 20000)
	env := map[string]string{
		"TAILCAR_PATHS":         log,
		"TAILCAR_SINK":          "http",
		"TAILCAR_SINK_URL":      url,
		"TAILCAR_BATCH_BYTES":   "64KiB",
		"TAILCAR_PROBE_MAX_AGE": "2s",
		"TAILCAR_DRAIN_DELAY":   "0s",
		"TAILCAR_DRAIN_TIMEOUT": "1s",
	}
	return startTailcar(t, env), env
}

// requireHealthyWhileFailing probes p past the time a stuck loop stops the
// heartbeat plus the probe's own limit after it: every probe must pass.
// Then it stops p, which cannot have delivered anything: exit 1.
func requireHealthyWhileFailing(t *testing.T, p *proc, env map[string]string, still func() error) {
	t.Helper()
	end := time.Now().Add(probe.StallAfter + 2*2*time.Second)
	for time.Now().Before(end) {
		if code, why := runProbe(t, env); code != 0 {
			t.Fatalf("probe failed while the backend failed: %s", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := still(); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1 (records undelivered)", code)
	}
}

// Ensure the probe stays healthy while the backend is down: waiting for a
// backend is not being wedged, and a restart would not help.
func TestProbe_HealthyWhileBackendDown(t *testing.T) {
	t.Parallel()
	p, env := backendFailing(t, "http://127.0.0.1:9/nothing-listens-here")
	waitFor(t, 10*time.Second, "the first failed send", func() bool { return strings.Contains(p.stderrText(), "send failed") })
	requireHealthyWhileFailing(t, p, env, func() error {
		if strings.Contains(p.stderrText(), "backend recovered") {
			return errors.New("a backend that was never up recovered")
		}
		return nil
	})
}

// Ensure the probe stays healthy while one send hangs for longer than a
// loop may be stuck: a backend that accepts and never answers is slow, not
// a wedged tailcar, for as long as the attempt's own timeout allows.
func TestProbe_HealthyWhileBackendHangs(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int64
	go func() {
		var held []net.Conn // open, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			held = append(held, c)
		}
	}()
	p, env := backendFailing(t, "http://"+l.Addr().String()+"/")
	waitFor(t, 10*time.Second, "a send to the hanging backend", func() bool { return accepted.Load() > 0 })
	requireHealthyWhileFailing(t, p, env, func() error {
		if n := accepted.Load(); n != 1 {
			return fmt.Errorf("%d connections; want the first attempt (30 s timeout) still hanging", n)
		}
		return nil
	})
}

// Ensure an invalid configuration gives exit 2 and one stderr line that
// names the variable, for run and probe alike, before anything starts.
func TestRun_InvalidConfigurationExitsTwo(t *testing.T) {
	dir := t.TempDir()
	paths := filepath.Join(dir, "*.log")
	crlfToken := filepath.Join(dir, "token")
	if err := os.WriteFile(crlfToken, []byte("abc\r\nX-Evil: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	positionsDir := filepath.Join(dir, "positions-is-a-dir")
	if err := os.Mkdir(positionsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	netSink := func(extra map[string]string) map[string]string {
		return withEnv(map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "http", "TAILCAR_SINK_URL": "http://127.0.0.1:9"}, extra)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    string
		notWant string // a secret that must not be echoed
		runOnly bool   // the probe opens no positions and builds no sink
	}{
		{"paths missing", map[string]string{}, "TAILCAR_PATHS", "", false},
		{"paths empty", map[string]string{"TAILCAR_PATHS": " , "}, "TAILCAR_PATHS", "", false},
		{"bad duration", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_DRAIN_DELAY": "abc"}, `TAILCAR_DRAIN_DELAY: invalid duration "abc"`, "", false},
		{"bad size", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_BATCH_BYTES": "lots"}, "TAILCAR_BATCH_BYTES", "", false},
		{"bad bool", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_TLS_INSECURE": "maybe"}, "TAILCAR_TLS_INSECURE", "", false},
		{"bad start", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_START_AT": "middle"}, "TAILCAR_START_AT", "", false},
		{"bad sink", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "kafka"}, "TAILCAR_SINK", "", false},
		{"no url", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "http"}, "TAILCAR_SINK_URL", "", false},
		{"otlp without url", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "otlp"}, "TAILCAR_SINK_URL", "", false},
		{"bad url", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "loki", "TAILCAR_SINK_URL": "ftp://x"}, "TAILCAR_SINK_URL", "", false},
		{"bad compression", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_COMPRESSION": "lz4"}, "TAILCAR_COMPRESSION", "", false},
		{"bad regexp", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_MULTILINE_START": "(["}, "TAILCAR_MULTILINE_START", "", false},
		{"bad level", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_LOG_LEVEL": ""}, "TAILCAR_LOG_LEVEL", "", false},
		{"bad tags", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_TAGS": "novalue"}, "TAILCAR_TAGS", "", false},
		{"tag ending with a dot", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_TAGS": "team.=x"}, "TAILCAR_TAGS", "", false},
		{"loki label name with a dash", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "loki", "TAILCAR_SINK_URL": "http://127.0.0.1:9", "TAILCAR_LOKI_LABELS": "_pod_name_,k8s-app"}, "TAILCAR_LOKI_LABELS", "", false},
		{"shadowing tag", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_TAGS": "message=x"}, "TAILCAR_TAGS", "", false},
		{"tag under another", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_TAGS": "team=x,team.name=y"}, "TAILCAR_TAGS", "", false},
		{"tag under a record field", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_TAGS": "file.name=x"}, "TAILCAR_TAGS", "", false},
		{"tag named as an elasticsearch metadata field", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_TAGS": "_id=x"}, "TAILCAR_TAGS", "", false},
		{"zero wait", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_BATCH_WAIT": "0s"}, "TAILCAR_BATCH_WAIT", "", false},
		// 0 is a valid drain delay: the message must not say otherwise.
		{"time layout without a year", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_PARSE": "json", "TAILCAR_TIME_FORMAT": "%Y-%m-%d %H:%M:%S"}, "TAILCAR_TIME_FORMAT", "", false},
		{"time layout of time only", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_PARSE": "json", "TAILCAR_TIME_FORMAT": "15:04:05"}, "TAILCAR_TIME_FORMAT", "", false},
		{"negative delay", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_DRAIN_DELAY": "-1s"}, "TAILCAR_DRAIN_DELAY: must be 0 or more, not -1s", "", false},
		{"missing CA", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "http", "TAILCAR_SINK_URL": "https://127.0.0.1:1", "TAILCAR_TLS_CA": "/nonexistent.pem"}, "TAILCAR_TLS_CA", "", true},
		{"secret twice", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK_TOKEN": "a", "TAILCAR_SINK_TOKEN_FILE": "/etc/hostname"}, "TAILCAR_SINK_TOKEN_FILE", "", false},
		// Issue 12, 3.10: values that would make every request fail.
		{"header name with a space", netSink(map[string]string{"TAILCAR_SINK_HEADERS": "X Team=a"}), "TAILCAR_SINK_HEADERS", "", false},
		{"header name not ASCII", netSink(map[string]string{"TAILCAR_SINK_HEADERS": "X-Équipe=a"}), "TAILCAR_SINK_HEADERS", "", false},
		{"header value with CR LF", netSink(map[string]string{"TAILCAR_SINK_HEADERS": "X-Team=a\r\nX-Evil: 1"}), "TAILCAR_SINK_HEADERS", "", false},
		{"token file with CR LF inside", netSink(map[string]string{"TAILCAR_SINK_TOKEN_FILE": crlfToken}), "TAILCAR_SINK_TOKEN_FILE", "X-Evil", false},
		{"loki url with the push path", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "loki", "TAILCAR_SINK_URL": "http://u:S3CRET@loki:3100/loki/api/v1/push"}, "TAILCAR_SINK_URL", "S3CRET", false},
		{"elasticsearch url with _bulk", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "elasticsearch", "TAILCAR_SINK_URL": "http://es:9200/_bulk/"}, "TAILCAR_SINK_URL", "", false},
		{"index with capitals", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "elasticsearch", "TAILCAR_SINK_URL": "http://127.0.0.1:9", "TAILCAR_ES_INDEX": "Logs-App"}, "TAILCAR_ES_INDEX", "", false},
		{"index with a space", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "elasticsearch", "TAILCAR_SINK_URL": "http://127.0.0.1:9", "TAILCAR_ES_INDEX": "logs app"}, "TAILCAR_ES_INDEX", "", false},
		{"index starting with _", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_SINK": "elasticsearch", "TAILCAR_SINK_URL": "http://127.0.0.1:9", "TAILCAR_ES_INDEX": "_bulk"}, "TAILCAR_ES_INDEX", "", false},
		{"content encoding header", netSink(map[string]string{"TAILCAR_SINK_HEADERS": "content-encoding=gzip", "TAILCAR_COMPRESSION": "none"}), "TAILCAR_SINK_HEADERS", "", false},
		{"host header", netSink(map[string]string{"TAILCAR_SINK_HEADERS": "Host=elsewhere"}), "TAILCAR_SINK_HEADERS", "", false},
		{"authorization twice", netSink(map[string]string{"TAILCAR_SINK_HEADERS": "Authorization=Bearer S3CRET", "TAILCAR_SINK_TOKEN": "other"}), "TAILCAR_SINK_HEADERS", "S3CRET", false},
		{"tenant twice", netSink(map[string]string{"TAILCAR_SINK_HEADERS": "X-Scope-OrgID=a", "TAILCAR_LOKI_TENANT": "b"}), "TAILCAR_SINK_HEADERS", "", false},
		{"port out of range", netSink(map[string]string{"TAILCAR_SINK_URL": "http://127.0.0.1:99999"}), "TAILCAR_SINK_URL", "", false},
		// 3.11: a password in the URL is masked in the error.
		{"url with password", netSink(map[string]string{"TAILCAR_SINK_URL": "htp://u:S3CRET@vl:9428/"}), "TAILCAR_SINK_URL", "S3CRET", false},
		{"url with password and bad port", netSink(map[string]string{"TAILCAR_SINK_URL": "http://u:S3CRET@vl:99999/"}), "TAILCAR_SINK_URL", "S3CRET", false},
		// 3.13: each TLS file is blamed under its own name, and an
		// ALIYUN_LOG_ENV_TAGS problem under that name.
		{"missing client cert", netSink(map[string]string{"TAILCAR_TLS_CERT": "/nonexistent-cert.pem", "TAILCAR_TLS_KEY": "/etc/hostname"}), "TAILCAR_TLS_CERT", "", true},
		{"missing client key", netSink(map[string]string{"TAILCAR_TLS_CERT": "/etc/hostname", "TAILCAR_TLS_KEY": "/nonexistent-key.pem"}), "TAILCAR_TLS_KEY", "", true},
		{"aliyun tag shadows a field", map[string]string{"TAILCAR_PATHS": paths, "ALIYUN_LOG_ENV_TAGS": "message", "message": "x"}, "ALIYUN_LOG_ENV_TAGS", "", false},
		// 3.8: a checkpoint location that cannot be written is a
		// configuration error, found before anything runs.
		{"positions is a directory", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_POSITIONS": positionsDir}, "TAILCAR_POSITIONS", "", true},
		{"positions not writable", map[string]string{"TAILCAR_PATHS": paths, "TAILCAR_POSITIONS": "/proc/1/tailcar-positions"}, "TAILCAR_POSITIONS", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"run", "probe"} {
				if cmd == "probe" && tc.runOnly {
					continue
				}
				c := exec.Command(tailcarBin, cmd)
				c.Env = baseEnv()
				for k, v := range tc.env {
					c.Env = append(c.Env, k+"="+v)
				}
				var stderr bytes.Buffer
				c.Stderr = &stderr
				err := c.Run()
				ee, ok := err.(*exec.ExitError)
				if !ok || ee.ExitCode() != 2 {
					t.Fatalf("%s: err %v, want exit 2; stderr %q", cmd, err, stderr.String())
				}
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				named := "tailcar: " + tc.want
				if !strings.Contains(tc.want, ":") {
					named += ":" // the variable at fault, not one that starts alike
				}
				if len(lines) != 1 || !strings.HasPrefix(lines[0], named) {
					t.Fatalf("%s: stderr %q, want one line naming %s", cmd, stderr.String(), tc.want)
				}
				if tc.notWant != "" && strings.Contains(stderr.String(), tc.notWant) {
					t.Fatalf("%s: stderr %q echoes %q", cmd, stderr.String(), tc.notWant)
				}
			}
		})
	}
}

// Ensure a misspelt TAILCAR_ variable is named in a warning, and the
// service-link variables of a Service named tailcar are not.
func TestRun_WarnsAboutUnknownVariables(t *testing.T) {
	dir := t.TempDir()
	p := startTailcar(t, map[string]string{
		"TAILCAR_PATHS":         filepath.Join(dir, "*.log"),
		"TAILCAR_DRAIN_DELAYS":  "5s",
		"TAILCAR_PORT":          "tcp://10.0.0.1:2020",
		"TAILCAR_PORT_2020_TCP": "tcp://10.0.0.1:2020",
		"TAILCAR_SERVICE_HOST":  "10.0.0.1",
		"TAILCAR_SERVICE_PORT":  "2020",
		"TAILCAR_DRAIN_DELAY":   "0s",
	})
	waitFor(t, 10*time.Second, "start", func() bool { return strings.Contains(p.stderrText(), "tailcar started") })
	p.signal(syscall.SIGTERM)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	stderr := p.stderrText()
	if !strings.Contains(stderr, `"variable":"TAILCAR_DRAIN_DELAYS"`) {
		t.Errorf("no warning names TAILCAR_DRAIN_DELAYS:\n%s", stderr)
	}
	for _, name := range []string{"TAILCAR_PORT", "TAILCAR_PORT_2020_TCP", "TAILCAR_SERVICE_HOST", "TAILCAR_SERVICE_PORT"} {
		if strings.Contains(stderr, `"variable":"`+name+`"`) {
			t.Errorf("service-link variable %s was warned about", name)
		}
	}
}

// Ensure the README's variable table is exactly what `tailcar env`
// prints, so neither can drift from the code.
func TestEnv_ReadmeTableMatchesTheBinary(t *testing.T) {
	out, err := exec.Command(tailcarBin, "env", "--markdown").Output()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, out) {
		t.Fatalf("README.md does not hold the table of `tailcar env --markdown`; paste it:\n%s", out)
	}
	plain, err := exec.Command(tailcarBin, "env").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"TAILCAR_PATHS", "TAILCAR_SINK_URL", "TAILCAR_PROBE_MAX_AGE", "ALIYUN_LOG_ENV_TAGS", "TAILCAR_ES_API_KEY_FILE"} {
		if !bytes.Contains(plain, []byte(name)) {
			t.Errorf("tailcar env does not list %s", name)
		}
	}
}

// Ensure `tailcar version` names the version, commit and Go version and
// needs no configuration.
func TestVersion(t *testing.T) {
	out, err := exec.Command(tailcarBin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); !strings.HasPrefix(got, "tailcar ") || !strings.Contains(got, "go1.") || !strings.Contains(got, "commit") {
		t.Fatalf("version printed %q", got)
	}
}

// Ensure a second SIGTERM skips the rest of the drain delay, and an app
// that never stops writing cannot hold the exit: the final read stops at
// the size each file has when it begins, and what was shipped is a gapless
// run of lines from the first, each once.
func TestRun_SecondSignalAndEndlessWriter(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	const delay = time.Minute
	p := startTailcar(t, map[string]string{"TAILCAR_PATHS": log, "TAILCAR_DRAIN_DELAY": delay.String(), "TAILCAR_BATCH_WAIT": "100ms"})
	gen := exec.Command(loggenBin, "--path", log, "--total-count", "0", "--logs-per-sec", "5000")
	if err := gen.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { gen.Process.Kill(); gen.Wait() }()
	waitFor(t, 20*time.Second, "records", func() bool { return len(p.records()) > 1000 })
	p.signal(syscall.SIGTERM)
	waitFor(t, 10*time.Second, "the drain to begin", func() bool { return strings.Contains(p.stderrText(), "drain begun") })
	signalled := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if took := time.Since(signalled); took >= delay {
		t.Fatalf("the second signal did not cut the %s delay short (%s)", delay, took)
	}
	if !strings.Contains(p.stderrText(), "second signal") {
		t.Error("the second signal was not logged")
	}
	maxSeq := 0
	for _, m := range messages(p.records()) {
		if n, ok := seq.Of(m); ok {
			maxSeq = max(maxSeq, n)
		}
	}
	c := seq.Count(messages(p.records()), maxSeq)
	t.Logf("shipped up to line %d while the writer went on: %s", maxSeq, c)
	if c.Missing != 0 || c.Duplicated != 0 {
		t.Fatalf("want lines 1..%d each once: %s", maxSeq, c)
	}
}

// Ensure a stdout that nobody reads cannot hold tailcar: the blocked write
// makes the probe fail (a wedged sidecar should be restarted), and after
// SIGTERM the drain timeout bounds the exit, which says 1 since records
// read were not delivered. Issue 12, 3.5.
func TestRun_StdoutNobodyReadsIsStuckAndBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendLines(t, log, 1, 20000) // far more than a pipe holds
	env := map[string]string{
		"TAILCAR_PATHS":         log,
		"TAILCAR_PROBE_MAX_AGE": "2s",
		"TAILCAR_DRAIN_DELAY":   "0s",
		"TAILCAR_DRAIN_TIMEOUT": "2s",
	}
	unread, stdout, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer unread.Close() // held open and never read: writes block, not fail
	var stderr lockedBuffer
	cmd := exec.Command(tailcarBin)
	cmd.Env = baseEnv()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdout.Close()
	done := make(chan int, 1)
	go func() { cmd.Wait(); done <- cmd.ProcessState.ExitCode() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	}()
	waitFor(t, 20*time.Second, "tailcar to start", func() bool { return strings.Contains(stderr.String(), "tailcar started") })
	waitFor(t, probe.StallAfter+20*time.Second, "the probe to see the stuck write", func() bool {
		code, why := runProbe(t, env)
		return code == 1 && strings.Contains(why, "wedged")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	// The bound is the drain timeout plus a second's grace; 15 s more is
	// room for a slow machine, not a measurement.
	select {
	case code := <-done:
		if code != 1 {
			t.Fatalf("exit code %d, want 1 (records read were not delivered)\n%s", code, stderr.String())
		}
	case <-time.After(2*time.Second + time.Second + 15*time.Second):
		t.Fatalf("tailcar blocked on stdout past the drain timeout\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "stuck past the drain timeout") {
		t.Errorf("the exit does not say a step was stuck:\n%s", stderr.String())
	}
}

// lockedBuffer is a bytes.Buffer that a process may write while a test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
