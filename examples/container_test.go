package examples

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailcar/tailcar/examples/loggen/seq"
)

// The container tests run under `make e2e` (part of `make test`), which
// builds these images offline and points CONTAINERS_CONF at
// examples/container/containers.conf.
const (
	tailcarImage = "localhost/tailcar:dev"
	loggenImage  = "localhost/tailcar-loggen:dev"
)

func requirePodman(t *testing.T) {
	t.Helper()
	if os.Getenv("TAILCAR_PODMAN_E2E") == "" {
		t.Skip("container tests run under `make e2e`")
	}
}

func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func podmanCode(args ...string) (int, string) {
	out, err := exec.Command("podman", args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, string(out)
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func name(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.IntN(1e9)) }

// records parses a container's stdout (podman logs, stdout only): every
// line must be a JSON record.
func records(t *testing.T, container string) []map[string]any {
	t.Helper()
	cmd := exec.Command("podman", "logs", container)
	out, err := cmd.Output() // stdout only: tailcar's own logs are on stderr
	if err != nil {
		t.Fatalf("podman logs %s: %v", container, err)
	}
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("a stdout line is not a record: %q", sc.Text())
		}
		recs = append(recs, r)
	}
	return recs
}

// tally counts numbered lines 1..written among the records' messages.
func tally(t *testing.T, recs []map[string]any, written int) seq.Tally {
	t.Helper()
	msgs := make([]string, 0, len(recs))
	for _, r := range recs {
		msg, _ := r["message"].(string)
		msgs = append(msgs, msg)
	}
	c := seq.Count(msgs, written)
	t.Logf("delivery: %s", c)
	return c
}

func removeContainers(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			exec.Command("podman", "rm", "-f", "-t", "0", n).Run()
		}
	})
}

// startPair runs tailcar (read-only root, the volume at /var/log/app) and
// loggen in two containers sharing a 0777 directory, as an emptyDir is.
func startPair(t *testing.T, tailcarEnv []string, loggenArgs ...string) (tc, lg string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	tc, lg = name("tailcar"), name("loggen")
	removeContainers(t, tc, lg)
	args := []string{"run", "-d", "--name", tc, "--read-only", "-v", dir + ":/var/log/app",
		"-e", "TAILCAR_PATHS=/var/log/app/*.log", "-e", "TAILCAR_POSITIONS=/var/log/app/.tailcar/positions"}
	for _, e := range tailcarEnv {
		args = append(args, "-e", e)
	}
	podman(t, append(args, tailcarImage)...)
	podman(t, append([]string{"run", "-d", "--name", lg, "--read-only", "-v", dir + ":/var/log/app", loggenImage}, loggenArgs...)...)
	return tc, lg
}

// Ensure the image is small, runs as a non-root user, and has tailcar on
// PATH for the exec probe.
func TestContainer_Image(t *testing.T) {
	requirePodman(t)
	size, err := strconv.ParseInt(podman(t, "image", "inspect", "--format", "{{.Size}}", tailcarImage), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	user := podman(t, "image", "inspect", "--format", "{{.Config.User}}", tailcarImage)
	t.Logf("image %s: %.2f MiB, user %q", tailcarImage, float64(size)/(1<<20), user)
	if size > 10<<20 {
		t.Errorf("image is %.2f MiB, want at most 10 MiB", float64(size)/(1<<20))
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("image user %q is not a non-root numeric user", user)
	}
	if out := podman(t, "run", "--rm", "--read-only", "--entrypoint", "tailcar", tailcarImage, "version"); !strings.HasPrefix(out, "tailcar ") {
		t.Errorf("tailcar version in the image printed %q", out)
	}
}

// Ensure tailcar runs with a read-only root filesystem on a 0777 volume (as
// an emptyDir is), ships every line loggen writes in another container,
// answers its exec probe, and on `podman stop -t 30` keeps following for
// the drain delay, ships the lines written meanwhile, and exits 0.
func TestContainer_ReadOnlyShipsProbesAndDrains(t *testing.T) {
	requirePodman(t)
	const total, rate = 3000, 200 // 15 s of lines
	tc, lg := startPair(t, []string{"TAILCAR_ENV_TAGS=_pod_name_|_namespace_", "_pod_name_=web-7d9f", "_namespace_=shop",
		"TAILCAR_DRAIN_DELAY=10s", "TAILCAR_BATCH_WAIT=200ms"},
		"--log-type=nginx", "--path=/var/log/app/access.log", fmt.Sprintf("--total-count=%d", total), fmt.Sprintf("--logs-per-sec=%d", rate))

	waitUntil(t, 60*time.Second, "2,000 records", func() bool { return len(records(t, tc)) >= 2000 })
	if code, out := podmanCode("exec", tc, "tailcar", "probe"); code != 0 {
		t.Fatalf("podman exec tailcar probe: exit %d: %s", code, out)
	}
	pid := podman(t, "inspect", "--format", "{{.State.Pid}}", tc)
	status, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "VmHWM:") {
			t.Logf("running container: %s", strings.Join(strings.Fields(l), " "))
		}
	}

	// The last lines are written during the 10 s drain delay; if loggen
	// were done already, the drain would not be tested at all.
	if state := podman(t, "inspect", "--format", "{{.State.Running}}", lg); state != "true" {
		t.Fatal("loggen finished before the stop; the drain delay is not exercised")
	}
	before := len(records(t, tc))
	start := time.Now()
	podman(t, "stop", "-t", "30", tc)
	took := time.Since(start)
	code := podman(t, "inspect", "--format", "{{.State.ExitCode}}", tc)
	t.Logf("podman stop to exit: %s (drain delay 10s)", took.Round(time.Millisecond))
	if code != "0" {
		t.Fatalf("exit code %s after podman stop, want 0", code)
	}
	if lgCode := podman(t, "wait", lg); lgCode != "0" {
		t.Fatalf("loggen exited %s", lgCode)
	}
	recs := records(t, tc)
	t.Logf("%d records shipped before podman stop, %d after it", before, len(recs)-before)
	if c := tally(t, recs, total); c.Missing != 0 || c.Duplicated != 0 {
		t.Fatalf("want every line once: %s; first missing %v", c, c.FirstMissing(20))
	}
	if before >= total {
		t.Fatal("every line was shipped before the stop; the drain shipped nothing")
	}
	for _, r := range recs {
		if r["_pod_name_"] != "web-7d9f" || r["_namespace_"] != "shop" {
			t.Fatalf("record without its tags: %v", r)
		}
	}
}

// Ensure the Job flow for clusters without native sidecars: the app
// touches the exit file when done, tailcar drains and exits 0 by itself,
// and every line is shipped.
func TestContainer_ExitFileEndsTheSidecar(t *testing.T) {
	requirePodman(t)
	const total = 1000
	tc, _ := startPair(t, []string{"TAILCAR_EXIT_ON=/var/log/app/.done", "TAILCAR_DRAIN_DELAY=2s"},
		"--path=/var/log/app/report.log", fmt.Sprintf("--total-count=%d", total), "--logs-per-sec=500", "--done-file=/var/log/app/.done")
	if code := podman(t, "wait", tc); code != "0" {
		t.Fatalf("tailcar exited %s after the exit file, want 0", code)
	}
	if c := tally(t, records(t, tc), total); c.Missing != 0 || c.Duplicated != 0 {
		t.Fatalf("want every line once: %s; first missing %v", c, c.FirstMissing(20))
	}
}

// Ensure the example Pod plays in podman: the app and tailcar share the
// emptyDir, and the records carry _pod_name_ from the downward API. podman
// 4.3 fills only metadata.name: status.podIP, status.hostIP, spec.nodeName
// and metadata.namespace are refused, so those env entries are left out
// here (TestExamples checks them by strict decoding); the images become the
// local ones and the app writes a known number of lines.
func TestContainer_KubePlayExamplePod(t *testing.T) {
	requirePodman(t)
	data, err := os.ReadFile("pod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const total = 300
	yaml := string(data)
	yaml = strings.ReplaceAll(yaml, "ghcr.io/tailcar/tailcar:0.1.0", tailcarImage)
	yaml = strings.ReplaceAll(yaml, "ghcr.io/tailcar/loggen:0.1.0", loggenImage)
	yaml = strings.Replace(yaml, `"--total-count=0", "--logs-per-sec=100"`, fmt.Sprintf(`"--total-count=%d", "--logs-per-sec=100"`, total), 1)
	yaml = strings.Replace(yaml, "spec:\n", "spec:\n  restartPolicy: Never\n", 1)
	for _, unsupported := range []string{"status.podIP", "status.hostIP", "spec.nodeName", "metadata.namespace"} {
		yaml = regexp.MustCompile(`(?m)^        - name: \w+\n          valueFrom:\n            fieldRef:\n              fieldPath: `+regexp.QuoteMeta(unsupported)+`\n`).ReplaceAllString(yaml, "")
	}
	if strings.Contains(yaml, "status.podIP") || !strings.Contains(yaml, "metadata.name") {
		t.Fatal("the pod was not rewritten as intended")
	}
	file := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	exec.Command("podman", "kube", "down", file).Run()
	t.Cleanup(func() { exec.Command("podman", "kube", "down", file).Run() })
	podman(t, "kube", "play", file)
	waitUntil(t, 90*time.Second, fmt.Sprintf("%d records from the pod", total), func() bool { return len(records(t, "web-tailcar")) >= total })
	if code, out := podmanCode("exec", "web-tailcar", "tailcar", "probe"); code != 0 {
		t.Fatalf("probe in the pod: exit %d: %s", code, out)
	}
	recs := records(t, "web-tailcar")
	if c := tally(t, recs, total); c.Missing != 0 || c.Duplicated != 0 {
		t.Fatalf("want every line once: %s; first missing %v", c, c.FirstMissing(20))
	}
	for _, r := range recs {
		if r["_pod_name_"] != "web" {
			t.Fatalf("_pod_name_ = %v, want the pod's name from the downward API: %v", r["_pod_name_"], r)
		}
	}
}

// builderImage has busybox, for an app that ends without a newline. Its
// tag follows go.sum; `make e2e` names it.
func builderImage(t *testing.T) string {
	t.Helper()
	image := os.Getenv("TAILCAR_BUILDER_IMAGE")
	if image == "" {
		t.Fatal("TAILCAR_BUILDER_IMAGE is not set; run `make e2e`")
	}
	return image
}

// Ensure container output as conmon writes it (podman --log-driver
// k8s-file, the CRI format), laid out as the kubelet does, reaches tailcar
// whole: numbered stdout and stderr interleaved, 100 KiB lines that conmon
// splits into P chunks, and a last line without a newline; every line once,
// with its stream, the tags from its path and the runtime's time.
func TestContainer_CRIFilesFromConmon(t *testing.T) {
	requirePodman(t)
	root := t.TempDir() // the node's /var/log
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	type app struct {
		pod, container, uid, id string
		image                   string
		args                    []string
	}
	apps := []app{
		{"web-1", "nginx", "uid-1", fmt.Sprintf("%064d", 1), loggenImage, []string{"--stdout", "--stderr", "--total-count=1000", "--logs-per-sec=2000"}},
		{"web-2", "big", "uid-2", fmt.Sprintf("%064d", 2), loggenImage, []string{"--stdout", "--total-count=40", "--logs-per-sec=0", "--pad=102400"}},
		{"job-3", "sh", "uid-3", fmt.Sprintf("%064d", 3), builderImage(t), nil},
	}
	if err := os.MkdirAll(filepath.Join(root, "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range apps {
		dir := filepath.Join(root, "pods", "shop_"+a.pod+"_"+a.uid, a.container)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// The link is absolute inside the container, where root is /var/log.
		target := "/var/log/pods/shop_" + a.pod + "_" + a.uid + "/" + a.container + "/0.log"
		if err := os.Symlink(target, filepath.Join(root, "containers", a.pod+"_shop_"+a.container+"-"+a.id+".log")); err != nil {
			t.Fatal(err)
		}
		n := name(a.container)
		names = append(names, n)
		args := []string{"run", "--name", n, "--log-driver", "k8s-file", "--log-opt", "path=" + filepath.Join(dir, "0.log")}
		if a.image == builderImage(t) {
			args = append(args, "--entrypoint", "/bin/sh", a.image, "-c", `echo "first seq=1"; printf "last without newline seq=2"`)
		} else {
			args = append(args, a.image)
			args = append(args, a.args...)
		}
		podman(t, args...)
	}
	removeContainers(t, names...)

	tc := name("tailcar")
	removeContainers(t, tc)
	pos := t.TempDir()
	if err := os.Chmod(pos, 0o777); err != nil {
		t.Fatal(err)
	}
	podman(t, "run", "-d", "--name", tc, "--read-only", "--user", "0",
		"-v", root+":/var/log:ro", "-v", pos+":/var/lib/tailcar",
		"-e", "TAILCAR_PATHS=/var/log/containers/*.log", "-e", "TAILCAR_SYMLINK_ROOTS=/var/log/pods",
		"-e", "TAILCAR_FORMAT=auto", "-e", "TAILCAR_PATH_TAGS=kubernetes",
		"-e", "TAILCAR_POSITIONS=/var/lib/tailcar/positions", "-e", "TAILCAR_DRAIN_DELAY=1s",
		"-e", "TAILCAR_ENV_TAGS=_node_name_", "-e", "_node_name_=node-1",
		tailcarImage)
	const want = 1000*2 + 40 + 2
	waitUntil(t, 60*time.Second, "every line", func() bool { return len(records(t, tc)) >= want })
	podman(t, "stop", "-t", "30", tc)
	recs := records(t, tc)

	byApp := map[string][]map[string]any{}
	for _, r := range recs {
		if r["_namespace_"] != "shop" || r["_node_name_"] != "node-1" || r["_pod_name_"] == nil || r["_container_id_"] == nil {
			t.Fatalf("record without its tags: %v", r)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["@timestamp"])); err != nil || r["observed_timestamp"] == nil {
			t.Fatalf("record without the runtime's time: %v", r)
		}
		c, _ := r["_container_name_"].(string)
		byApp[c] = append(byApp[c], r)
	}
	for _, stream := range []string{"stdout", "stderr"} {
		var of []map[string]any
		for _, r := range byApp["nginx"] {
			if r["stream"] == stream {
				of = append(of, r)
			}
		}
		if c := tally(t, of, 1000); c.Missing != 0 || c.Duplicated != 0 {
			t.Errorf("nginx %s: %s", stream, c)
		}
	}
	big := byApp["big"]
	if c := tally(t, big, 40); c.Missing != 0 || c.Duplicated != 0 {
		t.Errorf("100 KiB lines: %s", c)
	}
	for _, r := range big {
		if msg, _ := r["message"].(string); len(msg) < 100<<10 || r["truncated"] != nil {
			t.Fatalf("a 100 KiB line arrived as %d bytes (truncated %v): its P chunks were not joined", len(msg), r["truncated"])
		}
	}
	sh := byApp["sh"]
	if len(sh) != 2 || sh[1]["message"] != "last without newline seq=2" {
		t.Errorf("the line without a newline: %v", sh)
	}
	if len(recs) != want {
		t.Errorf("%d records, want %d", len(recs), want)
	}
}
