package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// nginxServer is a real nginx from apt on 127.0.0.1, with Debian's stock
// combined access log format, in a directory of the test's own.
type nginxServer struct {
	addr, accessLog string
}

func startNginx(t *testing.T) *nginxServer {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatal("nginx is not installed; `make test` installs it (nginx-light)")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	n := &nginxServer{addr: freePort(t), accessLog: filepath.Join(dir, "access.log")}
	template, err := os.ReadFile(filepath.Join("bench", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("@DIR@", dir, "@ACCESS_LOG@", n.accessLog, "@LISTEN@", n.addr).Replace(string(template))
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	out, err := os.Create(filepath.Join(dir, "stdio"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// SIGQUIT: nginx's graceful stop.
	startServer(t, cmd, syscall.SIGQUIT, func() {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Logf("nginx error.log:\n%s", b)
	})
	waitFor(t, 10*time.Second, "nginx to listen", func() bool {
		resp, err := http.Get("http://" + n.addr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return n
}

// request sends numbered GET requests 1..n with user agents that need
// escaping; every tenth goes to a path that answers 404.
func (n *nginxServer) request(t *testing.T, total int) {
	t.Helper()
	agents := []string{`curl/8.5.0`, `Mozilla/5.0 "quoted" \ back`, `ünïcödé agent`, `tab	agent`}
	for i := 1; i <= total; i++ {
		path := "/item"
		if i%10 == 0 {
			path = "/missing"
		}
		req, err := http.NewRequest("GET", fmt.Sprintf("http://%s%s?seq=%d", n.addr, path, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", agents[i%len(agents)])
		req.Header.Set("Referer", "https://shop.example/?from="+strconv.Itoa(i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// handshake sends what a TLS client sends first to the plain port, as
// scanners and misconfigured clients do: nginx answers 400 and logs the
// bytes, escaped, as the request, which has no method, URI or protocol.
func (n *nginxServer) handshake(t *testing.T) {
	t.Helper()
	conn, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n")); err != nil {
		t.Fatal(err)
	}
	// nginx closes the connection after its answer.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatal(err)
	}
}

// Ensure a real nginx's access log, read as a backlog, becomes records
// with nginx's fields: numbers as numbers, escaped quotes decoded, and the
// request's own time in @timestamp (time_local, to the second), seconds
// before the read time kept in observed_timestamp. The request is given in
// its parts, and whole only when it has none (a TLS handshake's bytes).
func TestRun_ParsesARealNginxAccessLog(t *testing.T) {
	t.Parallel()
	ngx := startNginx(t)
	const total = 300
	ngx.handshake(t)
	ngx.request(t, total)
	lastRequest := time.Now()
	waitFor(t, 20*time.Second, "nginx to log every request", func() bool {
		b, _ := os.ReadFile(ngx.accessLog)
		return strings.Count(string(b), "seq=") >= total && strings.Contains(string(b), `"\x16\x03\x01`)
	})
	// A backlog: the lines are read seconds after they were written.
	waitFor(t, 10*time.Second, "two seconds to pass", func() bool { return time.Since(lastRequest) > 2*time.Second })

	p := startTailcar(t, withEnv(podEnv, map[string]string{
		"TAILCAR_PATHS":       ngx.accessLog,
		"TAILCAR_POSITIONS":   filepath.Join(t.TempDir(), "positions"),
		"TAILCAR_ENV_TAGS":    allEnvTags,
		"TAILCAR_PARSE":       "nginx",
		"TAILCAR_DRAIN_DELAY": "0s",
		"TAILCAR_BATCH_WAIT":  "100ms",
	}))
	waitFor(t, 20*time.Second, "every request", func() bool {
		return seq.Count(messages(p.records()), total).Missing == 0
	})
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	all := p.records()
	requireTags(t, all, nil)
	var recs []map[string]any // the numbered requests, not the readiness checks
	var seqs []string
	for _, r := range all {
		uri, _ := r["request_uri"].(string)
		if _, ok := seq.Of(uri); ok {
			recs = append(recs, r)
			seqs = append(seqs, uri)
		}
	}
	requireNoLoss(t, seq.Count(seqs, total), false)
	handshakes := 0
	for _, r := range all {
		request, _ := r["request"].(string)
		if !strings.HasPrefix(request, "\x16\x03\x01") {
			continue
		}
		handshakes++
		if r["status"] != 400.0 || r["request_method"] != nil || r["request_uri"] != nil {
			t.Fatalf("the handshake's record: %v, want status 400 and the request whole, unsplit", r)
		}
	}
	if handshakes != 1 {
		t.Fatalf("%d records of the TLS handshake, want 1", handshakes)
	}
	for _, r := range recs {
		if _, whole := r["request"]; whole {
			t.Fatalf("record %v: the request both whole and in its parts", r)
		}
		uri, _ := r["request_uri"].(string)
		n, _ := seq.Of(uri)
		wantStatus := 200.0
		if n%10 == 0 {
			wantStatus = 404
		}
		if r["status"] != wantStatus || r["request_method"] != "GET" || r["remote_addr"] != "127.0.0.1" ||
			r["server_protocol"] != "HTTP/1.1" || r["http_referer"] != "https://shop.example/?from="+strconv.Itoa(n) {
			t.Fatalf("record %d lacks nginx's fields: %v", n, r)
		}
		if _, isNumber := r["body_bytes_sent"].(float64); !isNumber {
			t.Fatalf("body_bytes_sent %v is not a number", r["body_bytes_sent"])
		}
		if n%4 == 1 && r["http_user_agent"] != `Mozilla/5.0 "quoted" \ back` {
			t.Fatalf("user agent %q: nginx's \\x22 not decoded", r["http_user_agent"])
		}
		msg, _ := r["message"].(string)
		open, end := strings.IndexByte(msg, '['), strings.IndexByte(msg, ']')
		local, err := time.Parse("02/Jan/2006:15:04:05 -0700", msg[open+1:end])
		if err != nil {
			t.Fatalf("message %q: %v", msg, err)
		}
		stamp, _ := time.Parse(time.RFC3339Nano, r["@timestamp"].(string))
		observed, _ := time.Parse(time.RFC3339Nano, r["observed_timestamp"].(string))
		if !stamp.Equal(local) {
			t.Fatalf("@timestamp %v, want time_local %v", stamp, local)
		}
		if observed.Sub(stamp) < 2*time.Second {
			t.Fatalf("read at %v, only %v after the request: not a backlog", observed, observed.Sub(stamp))
		}
		if _, dup := r["time_local"]; dup {
			t.Fatal("time_local shipped besides @timestamp")
		}
	}
}

// ackedToEnd reports whether the positions say every byte of the file at
// path was acknowledged: the newer (seq) of the durable file and the
// recent one, as tailcar loads them.
func ackedToEnd(t *testing.T, positions, path string) bool {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	type positionsFile struct {
		Seq   uint64 `json:"seq"`
		Files []struct {
			Path   string `json:"path"`
			Offset int64  `json:"offset"`
		} `json:"files"`
	}
	var newest *positionsFile
	for _, name := range []string{positions, positions + ".recent"} {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		var pf positionsFile
		if json.Unmarshal(data, &pf) == nil && (newest == nil || pf.Seq > newest.Seq) {
			newest = &pf
		}
	}
	if newest == nil {
		return false
	}
	for _, f := range newest.Files {
		if f.Path == path && f.Offset == fi.Size() {
			return true
		}
	}
	return false
}

// Ensure filtered lines are acknowledged like delivered ones: with 90% of
// the lines dropped by TAILCAR_DROP (the file ending in dropped lines),
// the checkpoint reaches the end of the file, a kill -9 and a restart
// ship nothing filtered and nothing twice, and nothing kept is missing.
func TestRun_FilteredLinesAreAcknowledgedAcrossKillNine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	positions := filepath.Join(dir, "positions")
	env := map[string]string{
		"TAILCAR_PATHS":       log,
		"TAILCAR_POSITIONS":   positions,
		"TAILCAR_DROP":        `seq=\d*[1-9] `, // keeps every tenth line
		"TAILCAR_BATCH_WAIT":  "100ms",
		"TAILCAR_DRAIN_DELAY": "0s",
	}
	appendLines(t, log, 1, 5005)
	first := startTailcar(t, env)
	waitFor(t, 20*time.Second, "the first run to ack the whole file", func() bool { return ackedToEnd(t, positions, log) })
	first.signal(syscall.SIGKILL)
	first.wait(10 * time.Second)
	appendLines(t, log, 5006, 10009)
	second := startTailcar(t, env)
	waitFor(t, 20*time.Second, "the second run to ack the whole file", func() bool { return ackedToEnd(t, positions, log) })
	second.signal(syscall.SIGTERM)
	if code := second.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}

	kept := map[int]int{}
	for _, m := range append(messages(first.records()), messages(second.records())...) {
		n, ok := seq.Of(m)
		if !ok {
			t.Fatalf("record without a number: %q", m)
		}
		if n%10 != 0 {
			t.Fatalf("line %d was filtered, yet shipped", n)
		}
		kept[n]++
	}
	missing, dup := 0, 0
	for n := 10; n <= 10000; n += 10 {
		switch kept[n] {
		case 0:
			missing++
		case 1:
		default:
			dup += kept[n] - 1
		}
	}
	t.Logf("10,009 written, 1,000 kept: received %d, missing %d, duplicated %d", len(kept), missing, dup)
	if missing != 0 || dup != 0 {
		t.Fatalf("%d kept lines missing, %d repeated", missing, dup)
	}
	if !strings.Contains(second.stderrText(), "resuming from checkpoint") {
		t.Error("the second run did not resume from the checkpoint")
	}
}

// Ensure parsed fields and the lines' own times reach a real
// VictoriaLogs: nginx's status can be queried as a field (status:=404),
// and a time range taken from the requests' own times, which ends before
// tailcar read them, finds every line. Then JSON written by log/slog
// arrives with its level as a field; its lines with an _id keep it as
// app__id, and those whose fields make a path a value and an object
// (user and user.id), which Elasticsearch would refuse, arrive unparsed.
func TestSinks_VictoriaLogsParsedFields(t *testing.T) {
	victoriaLogsBinary(t)
	t.Parallel()
	vl := startVictoriaLogs(t)
	ngx := startNginx(t)
	const total = 200
	firstRequest := time.Now().UTC().Truncate(time.Second)
	ngx.request(t, total)
	lastRequest := time.Now().UTC()
	waitFor(t, 10*time.Second, "two seconds to pass", func() bool { return time.Since(lastRequest) > 2*time.Second })

	ship := func(path, parse string) {
		t.Helper()
		p := startTailcar(t, withEnv(podEnv, map[string]string{
			"TAILCAR_PATHS":       path,
			"TAILCAR_POSITIONS":   filepath.Join(t.TempDir(), "positions"),
			"TAILCAR_ENV_TAGS":    allEnvTags,
			"TAILCAR_PARSE":       parse,
			"TAILCAR_SINK":        "elasticsearch",
			"TAILCAR_SINK_URL":    "http://" + vl.addr + "/insert/elasticsearch?_msg_field=message&_time_field=@timestamp",
			"TAILCAR_DRAIN_DELAY": "0s",
			"TAILCAR_BATCH_WAIT":  "100ms",
		}))
		waitFor(t, 20*time.Second, "tailcar to start", func() bool { return strings.Contains(p.stderrText(), "tailcar started") })
		p.signal(syscall.SIGTERM)
		if code := p.wait(30 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
	}
	ship(ngx.accessLog, "nginx")

	var all []string
	for _, r := range vl.query(`request_uri:seq`) {
		all = append(all, fmt.Sprint(r["request_uri"]))
	}
	requireNoLoss(t, seq.Count(all, total), false)
	notFound := vl.query(`status:=404`)
	if len(notFound) != total/10 {
		t.Fatalf("status:=404 found %d rows, want %d", len(notFound), total/10)
	}
	for _, r := range notFound {
		if n, _ := seq.Of(fmt.Sprint(r["request_uri"])); n%10 != 0 {
			t.Fatalf("status:=404 found request %d, which was answered 200", n)
		}
	}
	// Every request happened within [first, last+1s); tailcar read them
	// at least two seconds after the last.
	window := fmt.Sprintf(`_time:[%s, %s] request_uri:seq`, firstRequest.Format(time.RFC3339), lastRequest.Add(time.Second).Format(time.RFC3339))
	if got := len(vl.query(window)); got != total {
		t.Fatalf("%s found %d rows, want all %d: @timestamp is not the requests' own time", window, got, total)
	}

	app := filepath.Join(t.TempDir(), "app.json")
	f, err := os.Create(app)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(f, nil))
	for i := 1; i <= total; i++ {
		level := slog.LevelInfo
		if i%4 == 0 {
			level = slog.LevelWarn
		}
		attrs := []any{"order", 1000 + i, "file", "checkout.go"}
		switch {
		case i%5 == 0:
			attrs = append(attrs, "user", "ann", "user.id", i)
		case i%7 == 0:
			attrs = append(attrs, "_id", fmt.Sprintf("ord-%d", i))
		}
		logger.Log(context.Background(), level, fmt.Sprintf("checkout step seq=%d", i), attrs...)
	}
	f.Close()
	ship(app, "json")
	var msgs []string
	for _, r := range vl.query(`_msg:checkout`) {
		msg := fmt.Sprint(r["_msg"])
		msgs = append(msgs, msg)
		n, _ := seq.Of(msg)
		switch {
		case n%5 == 0:
			if !strings.HasPrefix(msg, `{"time":`) || r["level"] != nil || r["file"] != app {
				t.Fatalf("row %v: a line with user and user.id must arrive unparsed, the line as its message", r)
			}
		case r["app_file"] != "checkout.go" || r["file"] != app:
			t.Fatalf("row %v: the app's file must be kept as app_file beside tailcar's file", r)
		case n%7 == 0 && r["app__id"] != fmt.Sprintf("ord-%d", n):
			t.Fatalf("row %v: the app's _id must be kept as app__id", r)
		}
	}
	requireNoLoss(t, seq.Count(msgs, total), false)
	// Warnings are every fourth line; those that are also every fifth
	// arrive unparsed, without a level field.
	if got, want := len(vl.query(`level:=WARN`)), total/4-total/20; got != want {
		t.Fatalf("level:=WARN found %d rows, want %d", got, want)
	}
}
