package enrich

import (
	"encoding/json"
	"testing"
)

// Ensure the labels come from the tags and, in node mode, from each
// file's path; that a stream always has a label; and that a name Loki
// refuses is refused here first.
func TestLokiLabels(t *testing.T) {
	tags := []Tag{{"_node_name_", "node-1"}, {"team", "shop"}}
	paths, err := NewPathTagger(PathTagsKubernetes)
	if err != nil {
		t.Fatal(err)
	}
	labelsOf := func(b []byte) map[string]string {
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("labels %s: %v", b, err)
		}
		return m
	}

	l, err := NewLokiLabels([]string{"_namespace_", "_pod_name_", "_node_name_"}, tags, paths)
	if err != nil {
		t.Fatal(err)
	}
	if !l.FromPaths() {
		t.Fatal("labels named after path tags do not come from paths")
	}
	web := labelsOf(l.For("/var/log/pods/shop_web-1_uid-1/nginx/0.log"))
	if len(web) != 3 || web["_namespace_"] != "shop" || web["_pod_name_"] != "web-1" || web["_node_name_"] != "node-1" {
		t.Errorf("web-1's labels %v", web)
	}
	if other := labelsOf(l.For("/var/log/pods/shop_web-2_uid-2/nginx/0.log")); other["_pod_name_"] != "web-2" {
		t.Errorf("web-2's labels %v", other)
	}
	if odd := labelsOf(l.For("/elsewhere/app.log")); len(odd) != 1 || odd["_node_name_"] != "node-1" {
		t.Errorf("a path without tags: labels %v, want the tags' alone", odd)
	}
	if fixed := labelsOf(l.Fixed()); len(fixed) != 1 || fixed["_node_name_"] != "node-1" {
		t.Errorf("fixed labels %v", fixed)
	}

	// A sidecar: no label from a path; every file has the fixed labels,
	// even one in the kubelet's layout.
	sidecar, err := NewLokiLabels([]string{"_namespace_", "team"}, tags, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sidecar.For("/var/log/pods/shop_web-1_uid-1/nginx/0.log"); sidecar.FromPaths() || string(got) != `{"team":"shop"}` {
		t.Errorf("sidecar labels %s", got)
	}

	// No label set at all: Loki refuses a stream without labels.
	none, _ := NewLokiLabels([]string{"_pod_name_"}, nil, nil)
	if string(none.Fixed()) != `{"job":"tailcar"}` {
		t.Errorf("no label: %s", none.Fixed())
	}
	for _, bad := range []string{"team.name", "k8s-app", "1st", "", "ü"} {
		if _, err := NewLokiLabels([]string{bad}, nil, nil); err == nil {
			t.Errorf("label name %q accepted", bad)
		}
	}
}
