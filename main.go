// Command tailcar is a Kubernetes sidecar that follows log files on a
// shared volume, adds the Pod's tags and ships the records to a backend.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tailcar/tailcar/enrich"
	"github.com/tailcar/tailcar/probe"
	"github.com/tailcar/tailcar/ship"
	"github.com/tailcar/tailcar/tailer"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// Exit codes, decided here and nowhere else.
const (
	exitOK          = 0
	exitUndelivered = 1 // also: probe unhealthy
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
			return exitUndelivered
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
			return exitUndelivered
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
	}
	return runAgent(cfg, sink, log)
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
		return ship.NewLoki(ep, cfg.lokiLabels())
	default:
		return ship.NewHTTP(ep)
	}
}

// pipeline turns tailer lines into records and hands them to the shipper:
// the tailer → enrich → ship path, one line at a time, without allocating.
type pipeline struct {
	enc       *enrich.Encoder
	shipper   *ship.Shipper
	buf       []byte
	truncated atomic.Int64 // records cut at TAILCAR_MAX_RECORD_BYTES
}

func (p *pipeline) Handle(ctx context.Context, l tailer.Line) error {
	if l.Truncated {
		p.truncated.Add(1)
	}
	now := time.Now()
	p.buf = p.enc.AppendRecord(p.buf[:0], now, l.Path, l.Text, l.Truncated)
	return p.shipper.Add(ctx, p.buf, ship.Ack{Source: l.Source, Offset: l.End}, now, l.Since)
}

// CaughtUp sends what the read turn gathered in the turn's own wake-up.
func (p *pipeline) CaughtUp() { p.shipper.Flush() }

// positionsAcker sends the shipper's acks back to the checkpoints.
type positionsAcker struct{ p *tailer.Positions }

func (a positionsAcker) Ack(x ship.Ack) { a.p.Ack(x.Source, x.Offset) }

// runAgent follows, enriches and ships until stopped, then shuts down in
// the contract's order, and returns the exit code.
func runAgent(cfg *Config, sink ship.Sink, log zerolog.Logger) int {
	started := time.Now()
	// A channel rather than signal.NotifyContext: the second signal means
	// something of its own (skip the rest of the drain delay).
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	positions, err := tailer.LoadPositions(cfg.positionsPath(), log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return exitUndelivered
	}
	followerPulse, senderPulse := probe.NewPulse("follower"), probe.NewPulse("sender")
	m := newMetrics(cfg.heartbeatPath(), cfg.ProbeMaxAge)
	shipper := ship.NewShipper(ship.Config{
		Sink: sink, Acker: positionsAcker{positions}, Log: log.With().Str("sink", cfg.Sink).Logger(),
		BatchBytes: int(cfg.BatchBytes), BatchWait: cfg.BatchWait,
		SenderPulse: senderPulse, ProducerPulse: followerPulse, Observer: m,
	})
	follower := tailer.NewFollower(tailer.Config{
		Patterns: cfg.Paths, Exclude: cfg.Exclude, StartAtEnd: cfg.StartAt == "end",
		MaxRecordBytes: int(cfg.MaxRecordBytes), Multiline: cfg.multiline,
		Positions: positions, Log: log, Pulse: followerPulse,
		// Events settle for the batch wait: a record waits for its batch
		// from its event, not from its read, so its latency stays within
		// TAILCAR_BATCH_WAIT, and an app logging line by line costs one read
		// and one batch a second instead of a wake-up per line.
		Settle: min(max(cfg.BatchWait, 10*time.Millisecond), 5*time.Second),
	})
	heartbeat := probe.NewHeartbeat(cfg.heartbeatPath(), cfg.ProbeMaxAge, log, followerPulse, senderPulse)
	pipe := &pipeline{enc: cfg.encoder, shipper: shipper}
	m.attach(follower, shipper, positions, pipe)

	// Checkpoints, the heartbeat and metrics live until the very end.
	bgCtx, stopBackground := context.WithCancel(context.Background())
	var background errgroup.Group
	background.Go(func() error { return positions.Run(bgCtx, tailer.DefaultSaveInterval) })
	background.Go(func() error { return heartbeat.Run(bgCtx) })
	if cfg.MetricsAddr != "" {
		l, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			stopBackground()
			_ = background.Wait() // only just started; nothing of theirs to report
			log.Error().Err(err).Msg("cannot serve metrics")
			return exitUndelivered
		}
		background.Go(func() error { return m.serve(bgCtx, l) })
	}

	// The pipeline runs until finish is closed; abort is the hard stop at
	// the drain timeout.
	pipeCtx, abort := context.WithCancel(context.Background())
	defer abort()
	finish := make(chan struct{})
	running, pctx := errgroup.WithContext(pipeCtx)
	running.Go(func() error {
		defer shipper.Close()
		return follower.Run(pctx, finish, pipe)
	})
	running.Go(func() error { return shipper.Run(pctx) })
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- running.Wait() }()
	log.Info().Strs("paths", cfg.Paths).Str("sink", cfg.Sink).Str("positions", positions.Path()).Str("version", version).Msg("tailcar started")

	// 1. Run until a signal, the exit file, or a failure.
	var pipeErr error
	pipeEnded := false
	reason := ""
	select {
	case sig := <-signals:
		reason = sig.String()
	case <-exitFileAppears(bgCtx, cfg.ExitOn):
		reason = "exit file " + cfg.ExitOn
	case pipeErr = <-pipeDone:
		pipeEnded = true
		reason = "pipeline failed"
	}
	drainStarted := time.Now()
	log.Info().Str("reason", reason).Dur("delay", cfg.DrainDelay).Dur("timeout", cfg.DrainTimeout).Msg("drain begun")
	m.drain.Store(drainDelay)

	// 2. Keep following for the drain delay, so the app's last lines leave;
	// a second signal cuts it short.
	if !pipeEnded {
		delay := time.NewTimer(cfg.DrainDelay)
		select {
		case <-delay.C:
		case sig := <-signals:
			log.Info().Str("signal", sig.String()).Msg("second signal; skipping the rest of the delay")
		case pipeErr = <-pipeDone:
			pipeEnded = true
		}
		delay.Stop()
	}

	// 3. Stop finding files, read each to its current end, deliver, all
	// within the drain timeout.
	m.drain.Store(drainFinal)
	if !pipeEnded {
		close(finish)
		hardStop := time.AfterFunc(cfg.DrainTimeout, abort)
		pipeErr = <-pipeDone
		hardStop.Stop()
	}

	// 4. Checkpoint what was delivered, and only that.
	stopBackground()
	if err := background.Wait(); err != nil {
		// The heartbeat or the metrics server failed; delivery is unaffected.
		log.Error().Err(err).Msg("a background task failed")
	}
	saveErr := positions.Save()

	st, fs := shipper.Stats(), follower.Stats()
	undelivered := st.Undelivered()
	summary := log.Info()
	code := exitOK
	if pipeErr != nil || saveErr != nil || undelivered > 0 {
		summary = log.Error().AnErr("error", errors.Join(pipeErr, saveErr))
		code = exitUndelivered
	}
	summary.Int64("lines_read", fs.Lines).Int64("records_shipped", st.Delivered).
		Int64("records_dropped", st.Dropped).Int64("records_undelivered", undelivered).
		Int64("records_resent_on_retry", st.Resent).Int64("retries", st.Retries).
		Dur("drain_took", time.Since(drainStarted)).Dur("uptime", time.Since(started)).Int("exit_code", code).
		Msg("drain ended")
	return code
}

// exitFileAppears returns a channel closed when path exists. Polling once
// a second is cheaper than a watch for a file that appears once.
func exitFileAppears(ctx context.Context, path string) <-chan struct{} {
	appeared := make(chan struct{})
	if path == "" {
		return appeared
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if _, err := os.Stat(path); err == nil {
				close(appeared)
				return
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return appeared
}
