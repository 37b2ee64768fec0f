// Command tailcar is a Kubernetes sidecar that follows log files on a
// shared volume, adds the Pod's tags and ships the records to a backend.
//
//	main.go      the commands and their exit codes
//	config.go    the one configuration struct: read, checked, derived
//	envvars.go   `tailcar env`, unknown variables, value decoders
//	agent.go     building the parts, running them, the shutdown in order
//	pipeline.go  line → record → batch, and acks back to the checkpoints
//	metrics.go   /metrics and /healthz
//	limits.go    GOMAXPROCS and the Go memory limit
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailcar/tailcar/probe"
	"github.com/tailcar/tailcar/ship"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// Exit codes, decided here and nowhere else. Three outcomes share 1.
const (
	exitOK          = 0
	exitUndelivered = 1 // run: records read could not be delivered, or a step was stuck at the drain timeout
	exitUnhealthy   = 1 // probe: the runner is frozen, wedged or gone
	exitNoOutput    = 1 // env: the table could not be written
	exitBadConfig   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "tailcar %s commit %s %s\n", version, buildCommit(), runtime.Version())
		return exitOK
	case "env":
		if err := printEnv(stdout, len(args) > 1 && args[1] == "--markdown"); err != nil {
			return exitNoOutput
		}
		return exitOK
	case "run", "probe":
	default:
		fmt.Fprintf(stderr, "tailcar: unknown command %q; want run, probe, env or version\n", cmd)
		return exitBadConfig
	}

	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintf(stderr, "tailcar: %v\n", err)
		return exitBadConfig
	}
	if cmd == "probe" {
		ok, why := probe.Check(cfg.heartbeatPath(), cfg.ProbeMaxAge, time.Now())
		fmt.Fprintln(stdout, why)
		if !ok {
			return exitUnhealthy
		}
		return exitOK
	}
	// Sub-second times: a drain that takes 200 ms must be readable.
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(stderr).Level(cfg.logLevel).With().Timestamp().Logger()
	sink, err := newSink(cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "tailcar: %v\n", err)
		return exitBadConfig
	}
	for _, name := range unknownVars(os.Environ()) {
		log.Warn().Str("variable", name).Msg("unknown variable ignored; is it misspelt? (tailcar env lists them all)")
	}
	applyProcs(os.LookupEnv)
	if limit := applyMemoryLimit(os.ReadFile); limit > 0 {
		log.Debug().Int64("bytes", limit).Msg("Go memory limit set from the container's cgroup")
		if recordOutgrows(int64(cfg.MaxRecordBytes), limit) {
			log.Warn().Int64("max_record_bytes", int64(cfg.MaxRecordBytes)).Int64("memory_limit_bytes", limit).
				Msgf("TAILCAR_MAX_RECORD_BYTES is more than a %dth of the memory limit: a line that long would take more memory than the container has, and tailcar would be killed at it after every restart; lower it or raise the limit", recordMemoryFactor)
		}
	}
	a, err := newAgent(cfg, sink, log)
	if err != nil {
		fmt.Fprintf(stderr, "tailcar: %v\n", err)
		return exitBadConfig
	}
	return a.run()
}

func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// newSink builds the configured sink; its errors are configuration errors
// (an unreadable CA file, say), reported before anything starts.
func newSink(cfg *Config, stdout io.Writer) (ship.Sink, error) {
	if cfg.Sink == "stdout" {
		return ship.NewWriter(stdout), nil
	}
	ep, err := cfg.endpoint()
	if err != nil {
		return nil, err
	}
	switch cfg.Sink {
	case "elasticsearch":
		return ship.NewElasticsearch(ep, cfg.ESIndex)
	case "loki":
		return ship.NewLoki(ep, cfg.lokiLabels.Fixed())
	case "otlp":
		return ship.NewOTLP(ep, version)
	default:
		return ship.NewHTTP(ep)
	}
}
