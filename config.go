package main

import (
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/tailcar/tailcar/enrich"
	"github.com/tailcar/tailcar/ship"
	"github.com/tailcar/tailcar/tailer"
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
	// SymlinkRoots are where symlink targets may lie besides the patterns' directories.
	SymlinkRoots List `envconfig:"SYMLINK_ROOTS" desc:"comma-separated directories where symlink targets may lie, beyond the directories the patterns name; other links are refused"`
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
	// Format is how a file's lines frame records.
	Format string `envconfig:"FORMAT" default:"lines" desc:"lines, cri, docker or auto: lines are records; cri and docker are container runtimes' log files (partial lines joined, the runtime's time as @timestamp, the stream as stream); auto decides per file from its first line"`
	// PathTags gives fields from each file's path.
	PathTags string `envconfig:"PATH_TAGS" desc:"kubernetes: _namespace_, _pod_name_, _pod_uid_, _container_name_, _container_id_ from the kubelet's log paths; anything else is an RE2 expression on the path whose named groups become fields"`
	// Parse is how lines become fields.
	Parse string `envconfig:"PARSE" default:"none" desc:"none, json, nginx, regex or logfmt: how a line becomes fields; a line that does not parse is shipped as with none, and counted"`
	// ParseRegex has the named groups of TAILCAR_PARSE=regex.
	ParseRegex string `envconfig:"PARSE_REGEX" desc:"RE2 expression whose named groups become fields; required when TAILCAR_PARSE=regex; a group named message is the message"`
	// MessageKey names the parsed fields that may be the message.
	MessageKey List `envconfig:"MESSAGE_KEY" default:"message,msg" desc:"for json and logfmt: the parsed field that becomes message (the first present string wins); with none present the record has no message"`
	// TimeKey names the parsed fields that may hold the event's time.
	TimeKey List `envconfig:"TIME_KEY" desc:"the parsed field holding the event's time; default per parser: nginx time_local; json and logfmt the first of @timestamp,time,timestamp,ts; regex time,timestamp"`
	// TimeFormat reads the time field.
	TimeFormat string `envconfig:"TIME_FORMAT" default:"auto" desc:"auto (RFC 3339 at any precision and offset; Unix s, ms, µs or ns as numbers; 02/Jan/2006:15:04:05 -0700) or a Go time layout"`
	// Include keeps only matching lines.
	Include string `envconfig:"INCLUDE" desc:"RE2 on the line: when set, only matching lines are shipped"`
	// Drop drops matching lines.
	Drop string `envconfig:"DROP" desc:"RE2 on the line: matching lines are not shipped; their offsets are acknowledged all the same"`
	// Sink is where records go.
	Sink string `envconfig:"SINK" default:"stdout" desc:"stdout, http, elasticsearch, loki or otlp"`
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
	LokiLabels List `envconfig:"LOKI_LABELS" default:"_namespace_,_pod_name_" desc:"comma-separated names of tags or path tags that become Loki stream labels, a stream per Pod in node mode (label names; keep them low-cardinality); other fields stay in the line"`
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
	envTagsVar string       // the variable the env tag names came from
	tagValues  []enrich.Tag // env tags that are set, then static tags
	encoder    recordEncoder
	// groups give each file the group its records are sent in: the OTLP
	// sink's resources, or the loki sink's stream labels when a path
	// gives some; nil otherwise.
	groups     fileGroups
	lokiLabels *enrich.LokiLabels // the loki sink's; nil for the others
	parser     *enrich.Parser     // nil for TAILCAR_PARSE=none
	format     tailer.Format
	pathTagger *enrich.PathTagger // nil without TAILCAR_PATH_TAGS
	filter     enrich.Filter
	multiline  *regexp.Regexp
	logLevel   zerolog.Level
}

// configError names the variable at fault, as the one stderr line says.
type configError struct {
	Key string
	Err error
}

func (e *configError) Error() string { return e.Key + ": " + e.Err.Error() }

func (e *configError) Unwrap() error { return e.Err }

// bad is a configError for TAILCAR_<key>.
func bad(key, format string, args ...any) error {
	return &configError{envPrefix + "_" + key, fmt.Errorf(format, args...)}
}

// loadConfig reads the configuration, checks it, and derives what the
// components need from it: packages never read the environment.
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
	if err := cfg.readSecretFiles(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := cfg.derive(os.LookupEnv); err != nil {
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

// validate checks each value on its own terms; it changes nothing.
func (c *Config) validate() error {
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
	if c.MaxRecordBytes <= 0 {
		return bad("MAX_RECORD_BYTES", "must be more than 0")
	}
	if c.BatchBytes <= 0 {
		return bad("BATCH_BYTES", "must be more than 0")
	}
	if err := c.validateSink(); err != nil {
		return err
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
		switch {
		case d.positive && d.v <= 0:
			return bad(d.key, "must be more than 0, not %s", d.v)
		case d.v < 0:
			return bad(d.key, "must be 0 or more, not %s", d.v)
		}
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || !validPort(port) {
			return bad("METRICS_ADDR", "invalid listen address %q: want host:port or :port", c.MetricsAddr)
		}
	}
	// zerolog.ParseLevel("") gives NoLevel, which would silence nothing
	// and mean nothing: only the four documented levels are accepted.
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("LOG_LEVEL", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
	return nil
}

// validateSink checks what the sinks are given: values that would make
// every request fail are configuration errors, not reasons to retry.
func (c *Config) validateSink() error {
	switch c.Sink {
	case "stdout":
	case "http", "elasticsearch", "loki", "otlp":
		if c.SinkURL == "" {
			return bad("SINK_URL", "required for the %s sink", c.Sink)
		}
		u, err := url.Parse(c.SinkURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("SINK_URL", "invalid URL %q: want http(s)://host[:port][/path][?query]", ship.RedactURL(c.SinkURL))
		}
		if port := u.Port(); port != "" && !validPort(port) {
			return bad("SINK_URL", "invalid port %q in %q: want 1-65535", port, ship.RedactURL(c.SinkURL))
		}
		// The API's own path is added under the URL: given again, every
		// request would go to …/_bulk/_bulk and be answered 404. Promtail's
		// and Fluent Bit's settings hold the full push path, so it is
		// pasted from them.
		api := ""
		switch c.Sink {
		case "elasticsearch":
			api = ship.BulkPath
		case "loki":
			api = ship.LokiPushPath
		}
		if api != "" && strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), api) {
			return bad("SINK_URL", "%q ends with %s, which tailcar adds itself: give the URL without it", ship.RedactURL(c.SinkURL), api)
		}
	default:
		return bad("SINK", "must be stdout, http, elasticsearch, loki or otlp, not %q", c.Sink)
	}
	switch c.Compression {
	case "none", "gzip", "zstd":
	default:
		return bad("COMPRESSION", "must be none, gzip or zstd, not %q", c.Compression)
	}
	if c.Sink == "elasticsearch" {
		if why := badIndexName(c.ESIndex); why != "" {
			return bad("ES_INDEX", "%q %s; Elasticsearch would refuse every document", c.ESIndex, why)
		}
	}
	for _, kv := range c.SinkHeaders {
		if !validHeaderName(kv[0]) {
			return bad("SINK_HEADERS", "invalid header name %q: letters, digits and !#$%%&'*+-.^_`|~ only", kv[0])
		}
		if !validHeaderValue(kv[1]) {
			return bad("SINK_HEADERS", "the value of header %s holds a control character (a line break?)", kv[0])
		}
		if why := c.headerTaken(kv[0]); why != "" {
			return bad("SINK_HEADERS", "header %s %s", kv[0], why)
		}
	}
	for _, s := range []struct{ key, value string }{
		{"SINK_USER", c.SinkUser}, {"SINK_PASSWORD", c.SinkPassword}, {"SINK_TOKEN", c.SinkToken},
		{"ES_API_KEY", c.ESAPIKey}, {"LOKI_TENANT", c.LokiTenant},
	} {
		if !validHeaderValue(s.value) {
			key := s.key
			if c.secretFile(s.key) != "" {
				key += "_FILE"
			}
			return bad(key, "holds a control character (a line break inside?); it would break every request")
		}
	}
	return nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x7f || c <= ' ' || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s holds no control character but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// derive computes, once, what the components are given: tag values read
// from the environment, compiled expressions, the record encoder.
func (c *Config) derive(lookupEnv func(string) (string, bool)) error {
	names := []string(c.EnvTags)
	c.envTagsVar = envPrefix + "_ENV_TAGS"
	if _, set := lookupEnv(c.envTagsVar); !set {
		if v, ok := lookupEnv(aliyunEnvTags); ok {
			names, c.envTagsVar = splitPipes(v), aliyunEnvTags
		}
	}
	for _, name := range names {
		if v, ok := lookupEnv(name); ok {
			c.tagValues = append(c.tagValues, enrich.Tag{Name: name, Value: v})
		}
	}
	envTags := len(c.tagValues)
	for _, kv := range c.Tags {
		c.tagValues = append(c.tagValues, enrich.Tag{Name: kv[0], Value: kv[1]})
	}
	if c.MultilineStart != "" {
		re, err := regexp.Compile(c.MultilineStart)
		if err != nil {
			return bad("MULTILINE_START", "invalid regular expression: %v", err)
		}
		c.multiline = re
	}
	c.logLevel, _ = zerolog.ParseLevel(c.LogLevel)
	var err error
	if c.encoder, err = enrich.NewEncoder(c.tagValues); err != nil {
		key := "TAILCAR_TAGS"
		var te *enrich.TagError
		if errors.As(err, &te) && te.Index < envTags {
			key = c.envTagsVar
		}
		return &configError{key, err}
	}
	if err := c.deriveContainers(); err != nil {
		return err
	}
	switch c.Sink {
	case "otlp":
		// Tags and path tags are the resource, not fields of each record.
		c.encoder = enrich.NewOTLPEncoder()
		c.groups = enrich.NewResources(c.tagValues, c.pathTagger)
	case "loki":
		if c.lokiLabels, err = enrich.NewLokiLabels(c.LokiLabels, c.tagValues, c.pathTagger); err != nil {
			return bad("LOKI_LABELS", "%w", err)
		}
		if c.lokiLabels.FromPaths() {
			c.groups = c.lokiLabels
		}
	}
	return c.deriveParsing()
}

// deriveContainers reads the container log format and the path tags.
func (c *Config) deriveContainers() error {
	var err error
	if c.format, err = tailer.ParseFormat(c.Format); err != nil {
		return bad("FORMAT", "%v", err)
	}
	if c.PathTags == "" {
		return nil
	}
	if c.pathTagger, err = enrich.NewPathTagger(c.PathTags); err != nil {
		return bad("PATH_TAGS", "%v", err)
	}
	for _, name := range c.pathTagger.Names() {
		for _, t := range c.tagValues {
			if t.Name == name {
				return bad("PATH_TAGS", "gives %s, which is a tag already; a record must not carry it twice", name)
			}
		}
	}
	return nil
}

// deriveParsing compiles the filters and builds the parser.
func (c *Config) deriveParsing() error {
	for _, r := range []struct {
		key string
		src string
		dst **regexp.Regexp
	}{{"INCLUDE", c.Include, &c.filter.Include}, {"DROP", c.Drop, &c.filter.Drop}} {
		if r.src == "" {
			continue
		}
		re, err := regexp.Compile(r.src)
		if err != nil {
			return bad(r.key, "invalid regular expression: %v", err)
		}
		*r.dst = re
	}
	switch c.Parse {
	case enrich.ParseNone:
		if c.ParseRegex != "" {
			return bad("PARSE_REGEX", "set, but TAILCAR_PARSE is none; set TAILCAR_PARSE=regex to use it")
		}
		return nil
	case enrich.ParseJSON, enrich.ParseNginx, enrich.ParseRegex, enrich.ParseLogfmt:
	default:
		return bad("PARSE", "must be none, json, nginx, regex or logfmt, not %q", c.Parse)
	}
	if c.TimeFormat == "" {
		return bad("TIME_FORMAT", "empty; want auto or a Go time layout")
	}
	timeFormat, err := enrich.NewTimeFormat(c.TimeFormat)
	if err != nil {
		return bad("TIME_FORMAT", "%w", err)
	}
	pc := enrich.ParserConfig{Format: c.Parse, TimeKeys: c.TimeKey, Time: timeFormat}
	if len(pc.TimeKeys) == 0 {
		pc.TimeKeys = enrich.DefaultTimeKeys(c.Parse)
	}
	if c.Parse == enrich.ParseJSON || c.Parse == enrich.ParseLogfmt {
		pc.MessageKeys = c.MessageKey
	}
	if c.Parse == enrich.ParseRegex {
		if c.ParseRegex == "" {
			return bad("PARSE_REGEX", "required when TAILCAR_PARSE=regex")
		}
		re, err := regexp.Compile(c.ParseRegex)
		if err != nil {
			return bad("PARSE_REGEX", "invalid regular expression: %v", err)
		}
		pc.Regex = re
	}
	for _, t := range c.tagValues {
		pc.Taken = append(pc.Taken, t.Name)
	}
	if c.pathTagger != nil {
		pc.Taken = append(pc.Taken, c.pathTagger.Names()...)
	}
	p, err := enrich.NewParser(pc)
	if err != nil {
		key := "PARSE"
		if c.Parse == enrich.ParseRegex {
			key = "PARSE_REGEX"
		}
		return bad(key, "%v", err)
	}
	c.parser = p
	return nil
}

// endpoint gathers what every network sink needs.
func (c *Config) endpoint() (ship.Endpoint, error) {
	u, err := url.Parse(c.SinkURL)
	if err != nil {
		return ship.Endpoint{}, bad("SINK_URL", "%s", ship.RedactURL(err.Error()))
	}
	tlsCfg, err := ship.TLSConfig(c.TLSCA, c.TLSCert, c.TLSKey, c.TLSInsecure)
	if err != nil {
		key := "TLS_CA"
		var fe *ship.TLSFileError
		if errors.As(err, &fe) {
			key = map[string]string{"ca": "TLS_CA", "cert": "TLS_CERT", "key": "TLS_KEY"}[fe.Which]
		}
		return ship.Endpoint{}, bad(key, "%v", err)
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

// badIndexName says why Elasticsearch (and OpenSearch) would refuse an
// index or data stream name, or "" when it takes it. A date math name
// (<logs-{now/d}>) is left to Elasticsearch to resolve.
func badIndexName(name string) string {
	switch {
	case strings.HasPrefix(name, "<") && strings.HasSuffix(name, ">"):
		return ""
	case name == "" || name == "." || name == "..":
		return "is not an index name"
	case len(name) > 255:
		return "is longer than 255 bytes"
	case strings.ContainsAny(name[:1], "-_+"):
		return "starts with -, _ or +"
	case name != strings.ToLower(name):
		return "has capital letters"
	case strings.ContainsAny(name, ` \/*?"<>|,#:`):
		return `holds one of \ / * ? " < > | , # : or a space`
	}
	return ""
}

// headerTaken says why a header of TAILCAR_SINK_HEADERS cannot be given,
// or "" when it can: tailcar writes it itself, so the two would disagree
// (a Content-Encoding that does not match the body makes a backend refuse
// every batch) or one would silently replace the other.
func (c *Config) headerTaken(name string) string {
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "Content-Type", "Content-Length", "Transfer-Encoding", "Host", "Connection":
		return "is written by tailcar for each request"
	case "Content-Encoding":
		return "is written by tailcar from TAILCAR_COMPRESSION"
	case "Authorization":
		if c.SinkUser != "" || c.SinkPassword != "" || c.SinkToken != "" || c.ESAPIKey != "" {
			return "is given twice: TAILCAR_SINK_USER, _PASSWORD, _TOKEN or TAILCAR_ES_API_KEY sets it too"
		}
	case "X-Scope-Orgid":
		if c.LokiTenant != "" {
			return "is given twice: TAILCAR_LOKI_TENANT sets it too"
		}
	}
	return ""
}

// secretFile is the _FILE variant given for a secret, if any.
func (c *Config) secretFile(key string) string {
	switch key {
	case "SINK_PASSWORD":
		return c.SinkPasswordFile
	case "SINK_TOKEN":
		return c.SinkTokenFile
	case "ES_API_KEY":
		return c.ESAPIKeyFile
	}
	return ""
}

// readSecretFiles fills each secret from its _FILE variant, so a mounted
// Kubernetes secret need not pass through the environment. The file's
// trailing line break is not part of the secret.
func (c *Config) readSecretFiles() error {
	for _, s := range []struct {
		key   string
		value *string
	}{
		{"SINK_PASSWORD", &c.SinkPassword},
		{"SINK_TOKEN", &c.SinkToken},
		{"ES_API_KEY", &c.ESAPIKey},
	} {
		file := c.secretFile(s.key)
		if file == "" {
			continue
		}
		if *s.value != "" {
			return bad(s.key+"_FILE", "TAILCAR_%s is set too; give one of them", s.key)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return bad(s.key+"_FILE", "cannot read secret: %w", err)
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

// ownFiles are tailcar's own files, which it never follows.
func (c *Config) ownFiles() []string {
	p := c.positionsPath()
	return []string{p, p + ".tmp", p + ".recent", c.heartbeatPath()}
}
