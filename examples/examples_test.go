// Package examples holds the Kubernetes manifests users copy; this test
// keeps them valid and keeps the properties the README promises.
package examples

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// documents splits a manifest file into its YAML documents.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// podSpec strictly decodes a document (unknown or repeated fields fail)
// and returns its Pod spec.
func podSpec(t *testing.T, doc []byte) (kind string, annotations map[string]string, spec corev1.PodSpec) {
	t.Helper()
	var meta struct{ Kind string }
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		t.Fatal(err)
	}
	strict := func(v any) {
		if err := yaml.UnmarshalStrict(doc, v); err != nil {
			t.Fatalf("%s does not decode strictly: %v", meta.Kind, err)
		}
	}
	switch meta.Kind {
	case "Pod":
		var p corev1.Pod
		strict(&p)
		return meta.Kind, p.Annotations, p.Spec
	case "Job":
		var j batchv1.Job
		strict(&j)
		return meta.Kind, j.Spec.Template.Annotations, j.Spec.Template.Spec
	case "Deployment":
		var d appsv1.Deployment
		strict(&d)
		return meta.Kind, d.Spec.Template.Annotations, d.Spec.Template.Spec
	case "DaemonSet":
		var d appsv1.DaemonSet
		strict(&d)
		return meta.Kind, d.Spec.Template.Annotations, d.Spec.Template.Spec
	}
	t.Fatalf("unexpected kind %q", meta.Kind)
	return "", nil, corev1.PodSpec{}
}

// downwardAPI is what the five logtail tags must be filled from.
var downwardAPI = map[string]string{
	"_pod_name_":  "metadata.name",
	"_pod_ip_":    "status.podIP",
	"_namespace_": "metadata.namespace",
	"_node_name_": "spec.nodeName",
	"_node_ip_":   "status.hostIP",
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func durationEnv(t *testing.T, c corev1.Container, name string, def time.Duration) time.Duration {
	t.Helper()
	v, ok := envValue(c, name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// findTailcar returns the tailcar container and whether it is a native
// sidecar (an init container with restartPolicy Always).
func findTailcar(spec corev1.PodSpec) (corev1.Container, bool, bool) {
	for _, c := range spec.InitContainers {
		if c.Name == "tailcar" {
			native := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
			return c, native, true
		}
	}
	for _, c := range spec.Containers {
		if c.Name == "tailcar" {
			return c, false, true
		}
	}
	return corev1.Container{}, false, false
}

// checkTailcar asserts what every example promises about its sidecar.
func checkTailcar(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for name, field := range downwardAPI {
		found := false
		for _, e := range c.Env {
			if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == field {
				found = true
			}
		}
		if !found {
			t.Errorf("%s is not filled from %s by the downward API", name, field)
		}
	}
	tags, ok := envValue(c, "TAILCAR_ENV_TAGS")
	if !ok {
		tags, _ = envValue(c, "ALIYUN_LOG_ENV_TAGS")
	}
	for name := range downwardAPI {
		if !slices.Contains(strings.Split(tags, "|"), name) {
			t.Errorf("env tags %q do not name %s", tags, name)
		}
	}
	if c.LivenessProbe == nil || c.LivenessProbe.Exec == nil || !slices.Equal(c.LivenessProbe.Exec.Command, []string{"tailcar", "probe"}) {
		t.Error("no exec livenessProbe running tailcar probe")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("resources: want cpu and memory requests and a memory limit")
	}
	grace := 30 * time.Second
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	need := durationEnv(t, c, "TAILCAR_DRAIN_DELAY", 10*time.Second) + durationEnv(t, c, "TAILCAR_DRAIN_TIMEOUT", 15*time.Second)
	if need >= grace {
		t.Errorf("drain delay + drain timeout = %s does not fit in the %s grace period", need, grace)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("tailcar does not run with a read-only root filesystem")
	}
	// The positions, and the heartbeat beside them, must be on the shared
	// volume: the only writable place, and one that survives restarts.
	positions, ok := envValue(c, "TAILCAR_POSITIONS")
	if !ok {
		t.Fatal("TAILCAR_POSITIONS is not set")
	}
	onVolume := false
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(positions, m.MountPath+"/") && !m.ReadOnly {
			for _, v := range spec.Volumes {
				if v.Name == m.Name && v.EmptyDir != nil {
					onVolume = true
				}
			}
		}
	}
	if !onVolume {
		t.Errorf("positions %s are not on a writable emptyDir", positions)
	}
	// The app must share that volume.
	shared := false
	for _, app := range spec.Containers {
		if app.Name == "tailcar" {
			continue
		}
		for _, m := range app.VolumeMounts {
			for _, tm := range c.VolumeMounts {
				if m.Name == tm.Name {
					shared = true
				}
			}
		}
	}
	if !shared {
		t.Error("the app and tailcar share no volume")
	}
}

// checkScrape asserts the metrics port is served, exposed and annotated
// for Prometheus, all three the same.
func checkScrape(t *testing.T, annotations map[string]string, c corev1.Container) {
	t.Helper()
	addr, _ := envValue(c, "TAILCAR_METRICS_ADDR")
	_, port, _ := strings.Cut(addr, ":")
	exposed := false
	for _, p := range c.Ports {
		if p.Name == "metrics" && strconv.Itoa(int(p.ContainerPort)) == port {
			exposed = true
		}
	}
	if port == "" || !exposed || annotations["prometheus.io/scrape"] != "true" || annotations["prometheus.io/port"] != port {
		t.Errorf("metrics: TAILCAR_METRICS_ADDR %q, container ports %v, annotations %v disagree", addr, c.Ports, annotations)
	}
}

func TestExamples(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("want the four example manifests, found %v", files)
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			sidecars := 0
			for _, doc := range documents(t, file) {
				kind, annotations, spec := podSpec(t, doc)
				c, native, ok := findTailcar(spec)
				if !ok {
					continue // the logtail "before" half of the migration
				}
				sidecars++
				checkScrape(t, annotations, c)
				if kind == "DaemonSet" {
					checkDaemonSet(t, spec, c)
					continue
				}
				checkTailcar(t, spec, c)
				switch file {
				case "job-native-sidecar.yaml":
					if kind != "Job" || !native {
						t.Error("want a Job with tailcar as a native sidecar (init container, restartPolicy Always)")
					}
				case "job-exit-file.yaml":
					exitOn, _ := envValue(c, "TAILCAR_EXIT_ON")
					touched := false
					for _, app := range spec.Containers {
						if app.Name != "tailcar" && exitOn != "" && strings.Contains(strings.Join(append(app.Command, app.Args...), " "), exitOn) {
							touched = true
						}
					}
					if kind != "Job" || !touched {
						t.Errorf("want a Job whose app creates the TAILCAR_EXIT_ON file %q", exitOn)
					}
				case "migrate-from-logtail.yaml":
					if _, ok := envValue(c, "ALIYUN_LOG_ENV_TAGS"); !ok {
						t.Error("the migration does not keep ALIYUN_LOG_ENV_TAGS")
					}
				}
			}
			if sidecars == 0 {
				t.Error("no tailcar container")
			}
		})
	}
}

// checkDaemonSet asserts what the node example promises: the kubelet's
// logs read-only, checkpoints on a hostPath, container logs decoded and
// tagged from their paths, every taint tolerated, node-critical priority,
// resources, a read-only root filesystem and the probe.
func checkDaemonSet(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for name, want := range map[string]string{
		"TAILCAR_PATHS": "/var/log/containers/*.log", "TAILCAR_PATH_TAGS": "kubernetes", "TAILCAR_FORMAT": "auto",
		"TAILCAR_SINK": "elasticsearch", "TAILCAR_SYMLINK_ROOTS": "/var/log/pods,/var/lib/docker/containers",
	} {
		if got, _ := envValue(c, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if ex, _ := envValue(c, "TAILCAR_EXCLUDE"); !strings.Contains(ex, "tailcar") {
		t.Errorf("TAILCAR_EXCLUDE %q does not leave out tailcar's own container", ex)
	}
	for name, field := range map[string]string{"_node_name_": "spec.nodeName", "_node_ip_": "status.hostIP"} {
		found := false
		for _, e := range c.Env {
			found = found || e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == field
		}
		if !found {
			t.Errorf("%s is not filled from %s", name, field)
		}
	}
	hostPaths := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range spec.Volumes {
		hostPaths[v.Name] = v.HostPath
	}
	positions, _ := envValue(c, "TAILCAR_POSITIONS")
	logsReadOnly, checkpoints := false, false
	for _, m := range c.VolumeMounts {
		hp := hostPaths[m.Name]
		if hp == nil {
			continue
		}
		if hp.Path == "/var/log" && m.ReadOnly {
			logsReadOnly = true
		}
		if !m.ReadOnly && strings.HasPrefix(positions, m.MountPath+"/") {
			checkpoints = true
		}
	}
	if !logsReadOnly || !checkpoints {
		t.Errorf("want /var/log mounted read-only and the positions (%s) on a writable hostPath", positions)
	}
	everyTaint := false
	for _, tol := range spec.Tolerations {
		everyTaint = everyTaint || tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
	}
	if !everyTaint || spec.PriorityClassName != "system-node-critical" {
		t.Error("want every taint tolerated and priorityClassName system-node-critical")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.Exec == nil || !slices.Equal(c.LivenessProbe.Exec.Command, []string{"tailcar", "probe"}) {
		t.Error("no exec livenessProbe running tailcar probe")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("resources: want a cpu request and a memory limit")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("tailcar does not run with a read-only root filesystem")
	}
	grace := 30 * time.Second
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	if need := durationEnv(t, c, "TAILCAR_DRAIN_DELAY", 10*time.Second) + durationEnv(t, c, "TAILCAR_DRAIN_TIMEOUT", 15*time.Second); need >= grace {
		t.Errorf("drain delay + timeout %s does not fit in %s", need, grace)
	}
}
