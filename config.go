package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/tailcar/tailcar/enrich"
	"github.com/tailcar/tailcar/ship"
)

// envPrefix is the prefix of every variable tailcar reads.
const envPrefix = "TAILCAR"

// aliyunEnvTags is logtail's name for TAILCAR_ENV_TAGS, read when the
// latter is unset so a logtail sidecar's env works unchanged.
const aliyunEnvTags = "ALIYUN_LOG_ENV_TAGS"

// Config is all of tailcar's configuration, read from the environment once.
type Config struct {
	// Paths are the glob patterns of files to follow.
	Paths List `envconfig:"PATHS" required:"true" desc:"comma-separated glob patterns of files to follow; ** matches across directories; new matching files are read from their start"`
	// Exclude are glob patterns never followed.
	Exclude List `envconfig:"EXCLUDE" desc:"comma-separated globs never followed; without / matched against the base name (*.gz), with / against the whole path"`
	// StartAt applies to files present at start without a checkpoint.
	StartAt string `envconfig:"START_AT" default:"beginning" desc:"beginning or end: where to start in a file that exists at start and has no checkpoint"`
	// Positions is the checkpoint file; empty means beside the first pattern.
	Positions string `envconfig:"POSITIONS" desc:"checkpoint file; default .tailcar-positions in the directory of the first pattern; keep it on the shared volume"`
	// EnvTags names environment variables added to every record.
	EnvTags PipeList `envconfig:"ENV_TAGS" desc:"|-separated names of environment variables added to every record when set; falls back to ALIYUN_LOG_ENV_TAGS"`
	// Tags are static fields added to every record.
	Tags Pairs `envconfig:"TAGS" desc:"static fields added to every record, key=value pairs separated by commas"`
	// MultilineStart matches the first line of a multiline record.
	MultilineStart string `envconfig:"MULTILINE_START" desc:"regular expression matching the first line of a record; other lines join the record before them"`
	// MaxRecordBytes cuts longer messages.
	MaxRecordBytes Size `envconfig:"MAX_RECORD_BYTES" default:"1MiB" desc:"a longer message is cut to this size and marked truncated: true"`
	// Sink is where records go.
	Sink string `envconfig:"SINK" default:"stdout" desc:"stdout, http, elasticsearch or loki"`
	// SinkURL is the backend's base URL.
	SinkURL string `envconfig:"SINK_URL" desc:"base URL of the backend; required for network sinks; path and query are kept"`
	// SinkHeaders are extra HTTP headers.
	SinkHeaders Pairs `envconfig:"SINK_HEADERS" desc:"extra HTTP headers for network sinks, Name=value pairs separated by commas"`
	// SinkUser and SinkPassword are basic auth credentials.
	SinkUser string `envconfig:"SINK_USER" desc:"basic auth user for network sinks"`
	// SinkPassword is the basic auth password.
	SinkPassword string `envconfig:"SINK_PASSWORD" desc:"basic auth password for network sinks (secret)"`
	// SinkPasswordFile holds SinkPassword.
	SinkPasswordFile string `envconfig:"SINK_PASSWORD_FILE" desc:"file holding TAILCAR_SINK_PASSWORD, such as a mounted secret"`
	// SinkToken is a bearer token.
	SinkToken string `envconfig:"SINK_TOKEN" desc:"sent as Authorization: Bearer <token> (secret)"`
	// SinkTokenFile holds SinkToken.
	SinkTokenFile string `envconfig:"SINK_TOKEN_FILE" desc:"file holding TAILCAR_SINK_TOKEN"`
	// ESAPIKey is an Elasticsearch API key.
	ESAPIKey string `envconfig:"ES_API_KEY" desc:"Elasticsearch API key, sent as Authorization: ApiKey <key> (secret)"`
	// ESAPIKeyFile holds ESAPIKey.
	ESAPIKeyFile string `envconfig:"ES_API_KEY_FILE" desc:"file holding TAILCAR_ES_API_KEY"`
	// ESIndex is the target of the bulk create actions.
	ESIndex string `envconfig:"ES_INDEX" default:"logs-tailcar-default" desc:"index or data stream for _bulk create actions; the default matches the logs-*-* data stream template"`
	// LokiLabels are the tags that become Loki stream labels.
	LokiLabels List `envconfig:"LOKI_LABELS" default:"_namespace_,_pod_name_" desc:"comma-separated tag names that become Loki stream labels (keep them low-cardinality); other fields stay in the line"`
	// LokiTenant is sent as X-Scope-OrgID.
	LokiTenant string `envconfig:"LOKI_TENANT" desc:"Loki tenant, sent as X-Scope-OrgID"`
	// TLSCA is a PEM CA bundle.
	TLSCA string `envconfig:"TLS_CA" desc:"PEM file: CA bundle to verify the backend"`
	// TLSCert is a PEM client certificate.
	TLSCert string `envconfig:"TLS_CERT" desc:"PEM file: client certificate"`
	// TLSKey is the client certificate's PEM key.
	TLSKey string `envconfig:"TLS_KEY" desc:"PEM file: client key"`
	// TLSInsecure skips certificate verification.
	TLSInsecure bool `envconfig:"TLS_INSECURE" default:"false" desc:"skip certificate verification (never the default)"`
	// Compression applies to network sinks.
	Compression string `envconfig:"COMPRESSION" default:"gzip" desc:"none, gzip or zstd for network sinks"`
	// BatchBytes closes a batch at this size.
	BatchBytes Size `envconfig:"BATCH_BYTES" default:"1MiB" desc:"a batch is sent when it reaches this size"`
	// BatchWait closes a batch when its oldest record is this old.
	BatchWait time.Duration `envconfig:"BATCH_WAIT" default:"1s" desc:"or when its oldest record has waited this long"`
	// DrainDelay keeps following after the stop signal.
	DrainDelay time.Duration `envconfig:"DRAIN_DELAY" default:"10s" desc:"after SIGTERM (or the exit file), keep following this long so the app's last lines are shipped"`
	// DrainTimeout bounds the final read and delivery.
	DrainTimeout time.Duration `envconfig:"DRAIN_TIMEOUT" default:"15s" desc:"after the delay: read every file to its end, deliver, checkpoint; give up after this long (exit 1)"`
	// ExitOn is a sentinel file that starts the drain when it appears.
	ExitOn string `envconfig:"EXIT_ON" desc:"path of a sentinel file; when it appears tailcar drains and exits 0 (Jobs without native sidecars)"`
	// ProbeMaxAge is how stale the heartbeat may be.
	ProbeMaxAge time.Duration `envconfig:"PROBE_MAX_AGE" default:"30s" desc:"tailcar probe fails when the runner has shown no sign of life for this long; a backend being down does not count"`
	// MetricsAddr serves /metrics and /healthz when set.
	MetricsAddr string `envconfig:"METRICS_ADDR" desc:"listen address for Prometheus /metrics and /healthz, e.g. :2020; empty is off"`
	// LogLevel is tailcar's own log level.
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"tailcar's own log level on stderr: debug, info, warn or error"`

	// Derived once by loadConfig; never read from the environment directly.
	envTags   []string
	tagValues []enrich.Tag // env tags that are set, then static tags
	encoder   *enrich.Encoder
	multiline *regexp.Regexp
	logLevel  zerolog.Level
}

// configError names the variable at fault, as the one stderr line says.
type configError struct {
	Key string
	Err error
}

func (e *configError) Error() string { return e.Key + ": " + e.Err.Error() }

// loadConfig reads and validates the configuration, and reads the values
// of the env tags: packages never read the environment.
func loadConfig() (*Config, error) {
	var cfg Config
	if err := envconfig.Process(envPrefix, &cfg); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return nil, &configError{pe.KeyName, describeParseError(pe)}
		}
		// envconfig's other error is a missing required variable.
		return nil, &configError{"TAILCAR_PATHS", errors.New("required, and not set")}
	}
	if _, set := os.LookupEnv("TAILCAR_ENV_TAGS"); set {
		cfg.envTags = cfg.EnvTags
	} else if v, ok := os.LookupEnv(aliyunEnvTags); ok {
		cfg.envTags = splitPipes(v)
	}
	for _, name := range cfg.envTags {
		if v, ok := os.LookupEnv(name); ok {
			cfg.tagValues = append(cfg.tagValues, enrich.Tag{Name: name, Value: v})
		}
	}
	for _, kv := range cfg.Tags {
		cfg.tagValues = append(cfg.tagValues, enrich.Tag{Name: kv[0], Value: kv[1]})
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := cfg.readSecretFiles(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func describeParseError(pe *envconfig.ParseError) error {
	var own *valueError
	if errors.As(pe.Err, &own) {
		return own
	}
	kind := map[string]string{"time.Duration": "duration", "bool": "boolean"}[pe.TypeName]
	if kind == "" {
		kind = "value"
	}
	return fmt.Errorf("invalid %s %q", kind, pe.Value)
}

func (c *Config) validate() error {
	bad := func(key, format string, args ...any) error {
		return &configError{"TAILCAR_" + key, fmt.Errorf(format, args...)}
	}
	// envconfig's required only checks that the variable is set.
	if len(c.Paths) == 0 {
		return bad("PATHS", "required, and empty")
	}
	for _, p := range c.Paths {
		if !doublestar.ValidatePattern(filepath.ToSlash(p)) {
			return bad("PATHS", "invalid glob %q", p)
		}
	}
	for _, p := range c.Exclude {
		if !doublestar.ValidatePattern(p) {
			return bad("EXCLUDE", "invalid glob %q", p)
		}
	}
	if c.StartAt != "beginning" && c.StartAt != "end" {
		return bad("START_AT", "must be beginning or end, not %q", c.StartAt)
	}
	if c.MultilineStart != "" {
		re, err := regexp.Compile(c.MultilineStart)
		if err != nil {
			return bad("MULTILINE_START", "invalid regular expression: %v", err)
		}
		c.multiline = re
	}
	if c.MaxRecordBytes <= 0 {
		return bad("MAX_RECORD_BYTES", "must be more than 0")
	}
	if c.BatchBytes <= 0 {
		return bad("BATCH_BYTES", "must be more than 0")
	}
	switch c.Sink {
	case "stdout":
	case "http", "elasticsearch", "loki":
		if c.SinkURL == "" {
			return bad("SINK_URL", "required for the %s sink", c.Sink)
		}
		u, err := url.Parse(c.SinkURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("SINK_URL", "invalid URL %q: want http(s)://host[:port][/path][?query]", c.SinkURL)
		}
	default:
		return bad("SINK", "must be stdout, http, elasticsearch or loki, not %q", c.Sink)
	}
	switch c.Compression {
	case "none", "gzip", "zstd":
	default:
		return bad("COMPRESSION", "must be none, gzip or zstd, not %q", c.Compression)
	}
	for _, d := range []struct {
		key      string
		v        time.Duration
		positive bool
	}{
		{"BATCH_WAIT", c.BatchWait, true},
		{"DRAIN_DELAY", c.DrainDelay, false},
		{"DRAIN_TIMEOUT", c.DrainTimeout, true},
		{"PROBE_MAX_AGE", c.ProbeMaxAge, true},
	} {
		if d.v < 0 || d.positive && d.v == 0 {
			return bad(d.key, "must be more than 0, not %s", d.v)
		}
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			return bad("METRICS_ADDR", "invalid listen address %q: want host:port or :port", c.MetricsAddr)
		}
	}
	// zerolog.ParseLevel("") gives NoLevel, which would silence nothing
	// and mean nothing: only the four documented levels are accepted.
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
		c.logLevel, _ = zerolog.ParseLevel(c.LogLevel)
	default:
		return bad("LOG_LEVEL", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
	var err error
	if c.encoder, err = enrich.NewEncoder(c.tagValues); err != nil {
		key := "TAGS"
		if len(c.envTags) > 0 {
			key = "ENV_TAGS"
		}
		return bad(key, "%v", err)
	}
	return nil
}

// endpoint gathers what every network sink needs.
func (c *Config) endpoint() (ship.Endpoint, error) {
	u, err := url.Parse(c.SinkURL)
	if err != nil {
		return ship.Endpoint{}, &configError{"TAILCAR_SINK_URL", err}
	}
	tlsCfg, err := ship.TLSConfig(c.TLSCA, c.TLSCert, c.TLSKey, c.TLSInsecure)
	if err != nil {
		return ship.Endpoint{}, &configError{"TAILCAR_TLS_CA", err}
	}
	headers := make(map[string]string, len(c.SinkHeaders))
	for _, kv := range c.SinkHeaders {
		headers[kv[0]] = kv[1]
	}
	return ship.Endpoint{
		URL: u, Headers: headers, User: c.SinkUser, Password: c.SinkPassword, Token: c.SinkToken,
		APIKey: c.ESAPIKey, Tenant: c.LokiTenant, Compression: c.Compression, TLS: tlsCfg,
	}, nil
}

// lokiLabels maps each configured label name to its tag's value; a label
// whose tag is not set is left out.
func (c *Config) lokiLabels() map[string]string {
	labels := make(map[string]string)
	for _, name := range c.LokiLabels {
		for _, t := range c.tagValues {
			if t.Name == name {
				labels[name] = t.Value
			}
		}
	}
	return labels
}

// readSecretFiles fills each secret from its _FILE variant, so a mounted
// Kubernetes secret need not pass through the environment.
func (c *Config) readSecretFiles() error {
	for _, s := range []struct {
		key   string
		value *string
		file  string
	}{
		{"SINK_PASSWORD", &c.SinkPassword, c.SinkPasswordFile},
		{"SINK_TOKEN", &c.SinkToken, c.SinkTokenFile},
		{"ES_API_KEY", &c.ESAPIKey, c.ESAPIKeyFile},
	} {
		if s.file == "" {
			continue
		}
		if *s.value != "" {
			return &configError{"TAILCAR_" + s.key + "_FILE", fmt.Errorf("TAILCAR_%s is set too; give one of them", s.key)}
		}
		data, err := os.ReadFile(s.file)
		if err != nil {
			return &configError{"TAILCAR_" + s.key + "_FILE", fmt.Errorf("cannot read secret: %w", err)}
		}
		*s.value = strings.TrimRight(string(data), "\r\n")
	}
	return nil
}

// positionsPath is TAILCAR_POSITIONS, or .tailcar-positions in the fixed
// directory part of the first pattern.
func (c *Config) positionsPath() string {
	if c.Positions != "" {
		return c.Positions
	}
	base, _ := doublestar.SplitPattern(filepath.ToSlash(c.Paths[0]))
	return filepath.Join(filepath.FromSlash(base), ".tailcar-positions")
}

// heartbeatPath sits beside the positions, on the writable shared volume.
func (c *Config) heartbeatPath() string { return c.positionsPath() + ".heartbeat" }

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
