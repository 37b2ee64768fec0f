package enrich

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// PathTagsKubernetes is TAILCAR_PATH_TAGS's name for the kubelet's log
// paths.
const PathTagsKubernetes = "kubernetes"

// The fields the kubelet's paths give, named as the sidecar's tags are.
const (
	TagNamespace     = "_namespace_"
	TagPodName       = "_pod_name_"
	TagPodUID        = "_pod_uid_"
	TagContainerName = "_container_name_"
	TagContainerID   = "_container_id_"
)

// maxPathTagCache bounds the paths whose tags are kept encoded: a node
// that has run thousands of Pods must not keep them all.
const maxPathTagCache = 4096

// PathTagger gives each file's fields from its path, encoded once per
// path. One goroutine uses it.
type PathTagger struct {
	re    *regexp.Regexp // nil for the kubelet's paths
	cache pathCache
}

// NewPathTagger returns the tagger for a TAILCAR_PATH_TAGS value:
// "kubernetes", or an RE2 expression whose named groups become fields.
func NewPathTagger(v string) (*PathTagger, error) {
	t := &PathTagger{cache: make(pathCache)}
	if v == PathTagsKubernetes {
		return t, nil
	}
	re, err := regexp.Compile(v)
	if err != nil {
		return nil, fmt.Errorf("neither kubernetes nor a valid regular expression: %w", err)
	}
	named := false
	for _, n := range re.SubexpNames() {
		if n != "" {
			named = true
			if slices.Contains(ownFields, n) {
				return nil, fmt.Errorf("group %q would replace the record's own field", n)
			}
		}
	}
	if !named {
		return nil, fmt.Errorf("the expression has no named group, so it would give no field")
	}
	t.re = re
	return t, nil
}

// Names are the fields the tagger may give.
func (t *PathTagger) Names() []string {
	if t.re == nil {
		return []string{TagNamespace, TagPodName, TagPodUID, TagContainerName, TagContainerID}
	}
	var names []string
	for _, n := range t.re.SubexpNames() {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}

// Encoded returns path's fields as ,"name":"value" pairs. It allocates
// only the first time it sees a path.
func (t *PathTagger) Encoded(path string) []byte {
	return t.cache.get(path, func(path string) []byte {
		var enc []byte
		for _, tag := range t.Tags(path) {
			enc = append(enc, ',')
			enc = appendStringFromString(enc, tag.Name)
			enc = append(enc, ':')
			enc = appendStringFromString(enc, tag.Value)
		}
		return enc
	})
}

// pathCache keeps what a path's tags encode to, built on first use. It
// is emptied when it holds maxPathTagCache paths, so that a node that has
// run thousands of Pods does not keep them all.
type pathCache map[string][]byte

func (c pathCache) get(path string, build func(path string) []byte) []byte {
	if enc, ok := c[path]; ok {
		return enc
	}
	if len(c) >= maxPathTagCache {
		clear(c)
	}
	enc := build(path)
	c[path] = enc
	return enc
}

// Tags returns path's fields, computed afresh on every call.
func (t *PathTagger) Tags(path string) []Tag {
	if t.re == nil {
		return KubernetesPathTags(path)
	}
	m := t.re.FindStringSubmatch(path)
	if m == nil {
		return nil
	}
	var tags []Tag
	for i, n := range t.re.SubexpNames() {
		if n != "" && m[i] != "" {
			tags = append(tags, Tag{n, m[i]})
		}
	}
	return tags
}

// KubernetesPathTags reads the fields of the kubelet's log paths:
//
//	/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log[.<rotation>]
//	/var/log/containers/<pod>_<namespace>_<container>-<id>.log
//
// Names of namespaces, Pods and containers cannot hold "_", which is what
// makes the split safe. A path of neither shape gives nothing.
func KubernetesPathTags(path string) []Tag {
	path = filepath.ToSlash(path)
	if i := strings.LastIndex(path, "/pods/"); i >= 0 {
		parts := strings.Split(path[i+len("/pods/"):], "/")
		if len(parts) != 3 {
			return nil
		}
		ids := strings.Split(parts[0], "_")
		if len(ids) != 3 || ids[0] == "" || ids[1] == "" || ids[2] == "" || parts[1] == "" {
			return nil
		}
		return []Tag{{TagNamespace, ids[0]}, {TagPodName, ids[1]}, {TagPodUID, ids[2]}, {TagContainerName, parts[1]}}
	}
	if i := strings.LastIndex(path, "/containers/"); i >= 0 {
		name, ok := strings.CutSuffix(path[i+len("/containers/"):], ".log")
		if !ok || strings.Contains(name, "/") {
			return nil
		}
		ids := strings.Split(name, "_")
		if len(ids) != 3 || ids[0] == "" || ids[1] == "" {
			return nil
		}
		dash := strings.LastIndexByte(ids[2], '-')
		if dash <= 0 || dash == len(ids[2])-1 {
			return nil
		}
		return []Tag{{TagNamespace, ids[1]}, {TagPodName, ids[0]}, {TagContainerName, ids[2][:dash]}, {TagContainerID, ids[2][dash+1:]}}
	}
	return nil
}
