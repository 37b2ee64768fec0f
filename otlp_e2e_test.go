package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// otelCollector is a real OpenTelemetry Collector on 127.0.0.1, built by
// `make test` with the official builder (an otlp receiver and a file
// exporter; .ci/otelcol-builder.yaml) and named by TAILCAR_OTELCOL. It
// writes what it receives to a file, as OTLP JSON.
type otelCollector struct {
	addr, out string
}

func startOTelCollector(t *testing.T) *otelCollector {
	t.Helper()
	bin := os.Getenv("TAILCAR_OTELCOL")
	if bin == "" {
		t.Skip("TAILCAR_OTELCOL is not set; `make test` builds the Collector and sets it")
	}
	dir := t.TempDir()
	c := &otelCollector{addr: freePort(t), out: filepath.Join(dir, "logs.json")}
	config := filepath.Join(dir, "config.yaml")
	err := os.WriteFile(config, fmt.Appendf(nil, `receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
exporters:
  file:
    path: %s
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
`, c.addr, c.out), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", config)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	startServer(t, cmd, syscall.SIGTERM, func() { t.Logf("collector stderr:\n%s", stderr.String()) })
	waitFor(t, 30*time.Second, "the Collector to listen", func() bool {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	return c
}

// logs decodes what the Collector has written so far: one LogsData per
// line, in OTLP JSON.
func (c *otelCollector) logs(t *testing.T) []*logspb.ResourceLogs {
	t.Helper()
	f, err := os.Open(c.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*logspb.ResourceLogs
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var data logspb.LogsData
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(sc.Bytes(), &data); err != nil {
			break // a line the exporter is still writing
		}
		out = append(out, data.ResourceLogs...)
	}
	return out
}

func countRecords(rls []*logspb.ResourceLogs) int {
	n := 0
	for _, rl := range rls {
		for _, sl := range rl.ScopeLogs {
			n += len(sl.LogRecords)
		}
	}
	return n
}

// Ensure a real Collector receives every numbered slog line, with every
// mapped field: the tags as resource attributes under the semantic
// conventions' names, the message as the body, the parsed fields as typed
// attributes, the event's time and the read time, and the severity.
func TestSinks_OTelCollectorGetsEveryMappedField(t *testing.T) {
	col := startOTelCollector(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "app.json")
	f, err := os.Create(app)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
	write := func(from, to int) {
		for i := from; i <= to; i++ {
			logger.Log(context.Background(), levels[i%4], fmt.Sprintf("step seq=%d", i),
				"n", i, "ratio", float64(i)+0.5, "even", i%2 == 0, "user", map[string]any{"id": i})
		}
	}
	const backlog, total = 1000, 2000
	write(1, backlog) // read as a backlog: its times are well before its reading
	started := time.Now()
	p := startTailcar(t, withEnv(podEnv, map[string]string{
		"TAILCAR_PATHS":       app,
		"TAILCAR_ENV_TAGS":    allEnvTags,
		"TAILCAR_TAGS":        "cluster=prod-eu",
		"TAILCAR_PARSE":       "json",
		"TAILCAR_SINK":        "otlp",
		"TAILCAR_SINK_URL":    "http://" + col.addr,
		"TAILCAR_BATCH_WAIT":  "200ms",
		"TAILCAR_BATCH_BYTES": "64KiB",
		"TAILCAR_DRAIN_DELAY": "1s",
	}))
	write(backlog+1, total)
	f.Close()
	waitFor(t, 60*time.Second, "every line in the Collector's file", func() bool { return countRecords(col.logs(t)) >= total })
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	ended := time.Now()

	// The times slog wrote, to compare with time_unix_nano.
	written := map[int]time.Time{}
	data, _ := os.ReadFile(app)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct {
			Time time.Time `json:"time"`
			N    int       `json:"n"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		written[rec.N] = rec.Time
	}

	wantResource := map[string]string{"k8s.pod.name": "web-7d9f", "k8s.namespace.name": "shop", "k8s.node.name": "node-1",
		"_pod_ip_": "10.1.2.3", "_node_ip_": "192.0.2.10", "cluster": "prod-eu"}
	var bodies []string
	for _, rl := range col.logs(t) {
		res := map[string]string{}
		for _, kv := range rl.Resource.GetAttributes() {
			res[kv.Key] = kv.Value.GetStringValue()
		}
		if len(res) != len(wantResource) {
			t.Fatalf("resource %v, want %v", res, wantResource)
		}
		for k, v := range wantResource {
			if res[k] != v {
				t.Fatalf("resource %v, want %v", res, wantResource)
			}
		}
		for _, sl := range rl.ScopeLogs {
			if sl.Scope.GetName() != "tailcar" {
				t.Fatalf("scope %v", sl.Scope)
			}
			for _, lr := range sl.LogRecords {
				body := lr.Body.GetStringValue()
				bodies = append(bodies, body)
				i, ok := seq.Of(body)
				if !ok {
					t.Fatalf("body %q", body)
				}
				attrs := map[string]*commonpb.AnyValue{}
				for _, kv := range lr.Attributes {
					attrs[kv.Key] = kv.Value
				}
				if len(attrs) != 5 || attrs["log.file.path"].GetStringValue() != app || attrs["n"].GetIntValue() != int64(i) ||
					attrs["ratio"].GetDoubleValue() != float64(i)+0.5 || attrs["even"].GetBoolValue() != (i%2 == 0) ||
					!isKvlistOfID(attrs["user"], i) {
					t.Fatalf("record %d attributes %v", i, attrs)
				}
				if got := time.Unix(0, int64(lr.TimeUnixNano)); !got.Equal(written[i]) {
					t.Fatalf("record %d: time %v, want slog's %v", i, got, written[i])
				}
				observed := time.Unix(0, int64(lr.ObservedTimeUnixNano))
				if observed.Before(started) || observed.After(ended) {
					t.Fatalf("record %d: observed %v, outside the run [%v, %v]", i, observed, started, ended)
				}
				wantLevel := levels[i%4]
				if lr.SeverityText != wantLevel.String() || int(lr.SeverityNumber) != 9+int(wantLevel) {
					t.Fatalf("record %d: severity %q %d, want %s", i, lr.SeverityText, lr.SeverityNumber, wantLevel)
				}
			}
		}
	}
	requireNoLoss(t, seq.Count(bodies, total), false)
}

// isKvlistOfID reports whether v is the kvlist value {"id": i}, as slog's
// nested user map must arrive.
func isKvlistOfID(v *commonpb.AnyValue, i int) bool {
	kvs := v.GetKvlistValue().GetValues()
	return len(kvs) == 1 && kvs[0].GetKey() == "id" && kvs[0].GetValue().GetIntValue() == int64(i)
}
