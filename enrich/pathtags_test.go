package enrich

import (
	"slices"
	"testing"
)

// Ensure both of the kubelet's path shapes give their fields, rotated
// names included, and other paths give none.
func TestKubernetesPathTags(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		path string
		want []Tag
	}{
		{"/var/log/pods/shop_web-7d9f_1f2e-uid/nginx/0.log",
			[]Tag{{TagNamespace, "shop"}, {TagPodName, "web-7d9f"}, {TagPodUID, "1f2e-uid"}, {TagContainerName, "nginx"}}},
		{"/var/log/pods/shop_web-7d9f_1f2e-uid/nginx/0.log.20261202-100000",
			[]Tag{{TagNamespace, "shop"}, {TagPodName, "web-7d9f"}, {TagPodUID, "1f2e-uid"}, {TagContainerName, "nginx"}}},
		{"/var/log/containers/web-7d9f_shop_nginx-" + id + ".log",
			[]Tag{{TagNamespace, "shop"}, {TagPodName, "web-7d9f"}, {TagContainerName, "nginx"}, {TagContainerID, id}}},
		{"/var/log/containers/web_shop_my-side-car-" + id + ".log",
			[]Tag{{TagNamespace, "shop"}, {TagPodName, "web"}, {TagContainerName, "my-side-car"}, {TagContainerID, id}}},
		{"/var/log/app/access.log", nil},
		{"/var/log/pods/not-three-parts/nginx/0.log", nil},
		{"/var/log/containers/nodash_shop_x.log", nil},
	} {
		if got := KubernetesPathTags(tc.path); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.path, got, tc.want)
		}
	}
	pt, err := NewPathTagger(`/logs/(?P<team>[^/]+)/`)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(pt.Encoded("/logs/payments/app.log")); got != `,"team":"payments"` {
		t.Errorf("regex path tags: %s", got)
	}
	if _, err := NewPathTagger(`(?P<file>.*)`); err == nil {
		t.Error("a group named file was accepted: it would shadow the record's field")
	}
}
