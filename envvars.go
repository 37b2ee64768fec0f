package main

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// unknownVars lists TAILCAR_* variables tailcar does not read, so a typo
// does not pass silently. Service links that Kubernetes injects for a
// Service named tailcar are not typos.
func unknownVars(environ []string) []string {
	known := make(map[string]bool)
	for _, v := range describeVars() {
		known[v.Name] = true
	}
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix+"_") || known[name] ||
			strings.HasPrefix(name, "TAILCAR_PORT") || strings.HasPrefix(name, "TAILCAR_SERVICE_") {
			continue
		}
		unknown = append(unknown, name)
	}
	return unknown
}

// varDoc describes one variable for `tailcar env` and the README.
type varDoc struct {
	Name, Type, Default, Required, Description string
}

// describeVars lists every variable tailcar reads, from Config's tags.
func describeVars() []varDoc {
	var docs []varDoc
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("envconfig")
		if key == "" {
			continue
		}
		required := "no"
		if f.Tag.Get("required") == "true" {
			required = "yes"
		}
		docs = append(docs, varDoc{
			Name: envPrefix + "_" + key, Type: typeName(f.Type), Default: f.Tag.Get("default"),
			Required: required, Description: f.Tag.Get("desc"),
		})
		if key == "ENV_TAGS" {
			docs = append(docs, varDoc{Name: aliyunEnvTags, Type: "|-list", Required: "no",
				Description: "logtail's name for TAILCAR_ENV_TAGS, read only when TAILCAR_ENV_TAGS is unset"})
		}
	}
	return docs
}

func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Size]():
		return "size"
	case reflect.TypeFor[time.Duration]():
		return "duration"
	case reflect.TypeFor[List]():
		return "list"
	case reflect.TypeFor[PipeList]():
		return "|-list"
	case reflect.TypeFor[Pairs]():
		return "pairs"
	}
	return t.Kind().String()
}

// printEnv writes the variables as an aligned table, or as the README's
// markdown table.
func printEnv(w io.Writer, markdown bool) error {
	if markdown {
		fmt.Fprintln(w, "| variable | type | default | required | description |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, v := range describeVars() {
			def := v.Default
			if def != "" {
				def = "`" + def + "`"
			}
			desc := strings.ReplaceAll(v.Description, "|", `\|`)
			fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s |\n", v.Name, strings.ReplaceAll(v.Type, "|", `\|`), def, v.Required, desc)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tDEFAULT\tREQUIRED\tDESCRIPTION")
	for _, v := range describeVars() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.Type, v.Default, v.Required, v.Description)
	}
	return tw.Flush()
}

// valueError is a decoder's complaint about a value, printed as it is.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// Size is a byte count written with an optional KiB, MiB or GiB suffix.
type Size int64

// Decode parses "512", "64KiB", "1MiB" or "2GiB".
func (s *Size) Decode(v string) error {
	num, mult := strings.TrimSpace(v), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return &valueError{fmt.Sprintf("invalid size %q: want a number with an optional KiB, MiB or GiB suffix", v)}
	}
	*s = Size(n * mult)
	return nil
}

// List is a comma-separated list; blanks around items and empty items
// are dropped.
type List []string

// Decode splits v on commas.
func (l *List) Decode(v string) error {
	*l = nil
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// PipeList is a |-separated list, logtail's format for env tag names.
type PipeList []string

// Decode splits v on |.
func (l *PipeList) Decode(v string) error {
	*l = splitPipes(v)
	return nil
}

func splitPipes(v string) []string {
	var out []string
	for _, item := range strings.Split(v, "|") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Pairs is a comma-separated list of key=value pairs, in order.
type Pairs [][2]string

// Decode parses "a=1,b=2". A value may contain '=' but not ','.
func (p *Pairs) Decode(v string) error {
	*p = nil
	for _, item := range strings.Split(v, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		key, value, ok := strings.Cut(item, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return &valueError{fmt.Sprintf("invalid pair %q: want key=value", strings.TrimSpace(item))}
		}
		*p = append(*p, [2]string{key, strings.TrimSpace(value)})
	}
	return nil
}
