package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tailcar/tailcar/enrich"
	"github.com/tailcar/tailcar/probe"
	"github.com/tailcar/tailcar/ship"
	"github.com/tailcar/tailcar/tailer"
)

// stuckGrace is how long the stop waits, past the drain timeout, for the
// pipeline to notice it was cancelled. A step that ignores cancellation
// (a write to a stdout pipe that nobody reads) cannot hold the exit.
const stuckGrace = time.Second

// agent is tailcar at work: the parts that follow, ship and checkpoint,
// built once, then run and drained in the contract's order.
type agent struct {
	cfg       *Config
	log       zerolog.Logger
	positions *tailer.Positions
	follower  *tailer.Follower
	shipper   *ship.Shipper
	pipe      *pipeline
	heartbeat *probe.Heartbeat
	metrics   *metrics
	listener  net.Listener // the metrics server's, when on
}

// newAgent builds every part. Its errors are about the configuration (a
// positions file that cannot be written, a port taken) and come before
// anything runs.
func newAgent(cfg *Config, sink ship.Sink, log zerolog.Logger) (*agent, error) {
	positions, err := tailer.LoadPositions(cfg.positionsPath(), log)
	if err != nil {
		return nil, &configError{"TAILCAR_POSITIONS", err}
	}
	followerPulse, senderPulse := probe.NewPulse("follower"), probe.NewPulse("sender")
	heartbeat := probe.NewHeartbeat(cfg.heartbeatPath(), cfg.ProbeMaxAge, log, followerPulse, senderPulse)
	if err := heartbeat.Write(); err != nil {
		return nil, &configError{"TAILCAR_POSITIONS", fmt.Errorf("the heartbeat beside the positions: %w", err)}
	}
	sends := newSendMetrics()
	shipper := ship.NewShipper(ship.Config{
		Sink: sink, Acker: positionsAcker{positions}, Log: log.With().Str("sink", cfg.Sink).Logger(),
		LocalSink:  cfg.Sink == "stdout",
		BatchBytes: int(cfg.BatchBytes), BatchWait: cfg.BatchWait,
		SenderPulse: senderPulse, ProducerPulse: followerPulse, Observer: sends,
		Unparse: enrich.AppendUnparsed,
	})
	follower := tailer.NewFollower(tailer.Config{
		Patterns: cfg.Paths, Exclude: cfg.Exclude, SymlinkRoots: cfg.SymlinkRoots, Ignore: cfg.ownFiles(),
		StartAtEnd: cfg.StartAt == "end", Format: cfg.format, MaxRecordBytes: int(cfg.MaxRecordBytes), Multiline: cfg.multiline,
		Positions: positions, Log: log, Pulse: followerPulse,
		// Events settle for the batch wait: a record waits for its batch
		// from its event, not from its read, so its latency stays within
		// TAILCAR_BATCH_WAIT, and an app logging line by line costs one read
		// and one batch a second instead of a wake-up per line.
		Settle: min(max(cfg.BatchWait, 10*time.Millisecond), 5*time.Second),
	})
	a := &agent{cfg: cfg, log: log, positions: positions, follower: follower, shipper: shipper,
		pipe: newPipeline(cfg, shipper), heartbeat: heartbeat}
	a.metrics = &metrics{follower: follower, shipper: shipper, positions: positions, pipe: a.pipe,
		sends: sends, heartbeat: cfg.heartbeatPath(), maxAge: cfg.ProbeMaxAge}
	if cfg.MetricsAddr != "" {
		if a.listener, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, &configError{"TAILCAR_METRICS_ADDR", err}
		}
	}
	return a, nil
}

// run follows, enriches and ships until stopped, then shuts down in the
// contract's order, and returns the exit code.
func (a *agent) run() int {
	started := time.Now()
	// A channel rather than signal.NotifyContext: the second signal means
	// something of its own (skip the rest of the drain delay).
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	// Checkpoints, the heartbeat and metrics live until the very end; the
	// positions saver saves one last time when it is stopped.
	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	var background errgroup.Group
	background.Go(func() error { return a.positions.Run(bgCtx, tailer.DefaultSaveInterval, tailer.DefaultDurableInterval) })
	background.Go(func() error { return a.heartbeat.Run(bgCtx) })
	if a.listener != nil {
		background.Go(func() error { return a.metrics.serve(bgCtx, a.listener) })
	}

	// The pipeline runs until finish is closed: the follower reads every
	// file to its end and returns, then the shipper is closed and returns
	// once it has delivered everything. abort is the hard stop.
	pipeCtx, abort := context.WithCancel(context.Background())
	defer abort()
	finish := make(chan struct{})
	pipe, pctx := errgroup.WithContext(pipeCtx)
	pipe.Go(func() error {
		err := a.follower.Run(pctx, finish, a.pipe)
		a.shipper.Close()
		return err
	})
	pipe.Go(func() error { return a.shipper.Run(pctx) })
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Wait() }()
	a.log.Info().Strs("paths", a.cfg.Paths).Str("sink", a.cfg.Sink).Str("positions", a.positions.Path()).Str("version", version).Msg("tailcar started")

	s := stop{pipeDone: pipeDone}
	// 1. Run until a signal, the exit file, or a failure.
	s.reason = a.until(signals, exitFileAppears(bgCtx, a.cfg.ExitOn), &s)
	drainStarted := time.Now()
	a.log.Info().Str("reason", s.reason).Stringer("delay", a.cfg.DrainDelay).Stringer("timeout", a.cfg.DrainTimeout).Msg("drain begun")
	a.metrics.drain.Store(drainDelay)
	// 2. Keep following for the drain delay, so the app's last lines
	// leave; a second signal cuts it short.
	a.delay(signals, &s)
	// 3. Stop finding files, read each to its current end, deliver: all
	// within the drain timeout, whatever blocks.
	a.metrics.drain.Store(drainFinal)
	deadline := time.Now().Add(a.cfg.DrainTimeout)
	if !s.ended {
		close(finish)
		hardStop := time.AfterFunc(a.cfg.DrainTimeout, abort)
		s.ended = s.wait(time.Until(deadline) + stuckGrace)
		hardStop.Stop()
	}
	// 4. Checkpoint what was delivered, and only that.
	stopBackground()
	saved := make(chan error, 1)
	go func() { saved <- background.Wait() }()
	var saveErr error
	select {
	case saveErr = <-saved:
	case <-time.After(max(time.Until(deadline), 0) + stuckGrace):
		saveErr = errors.New("the final checkpoint did not finish in time")
	}
	return a.summarize(s, saveErr, drainStarted, started)
}

// stop is the state of the shutdown: why it began, and how the pipeline
// ended.
type stop struct {
	reason   string
	pipeDone <-chan error
	ended    bool  // the pipeline returned
	err      error // what it returned
}

// wait waits up to d for the pipeline to return.
func (s *stop) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case s.err = <-s.pipeDone:
		return true
	case <-t.C:
		s.err = errors.New("a step was stuck past the drain timeout; exiting without it")
		return false
	}
}

// until blocks until a signal, the exit file, or the pipeline ending, and
// says which.
func (a *agent) until(signals <-chan os.Signal, exitFile <-chan struct{}, s *stop) string {
	select {
	case sig := <-signals:
		return sig.String()
	case <-exitFile:
		return "exit file " + a.cfg.ExitOn
	case s.err = <-s.pipeDone:
		s.ended = true
		return "pipeline failed"
	}
}

// delay keeps following for the drain delay, unless a second signal comes
// or the pipeline ends.
func (a *agent) delay(signals <-chan os.Signal, s *stop) {
	if s.ended {
		return
	}
	t := time.NewTimer(a.cfg.DrainDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case sig := <-signals:
		a.log.Info().Str("signal", sig.String()).Msg("second signal; skipping the rest of the delay")
	case s.err = <-s.pipeDone:
		s.ended = true
	}
}

// summarize logs the exit summary and decides the exit code.
func (a *agent) summarize(s stop, saveErr error, drainStarted, started time.Time) int {
	if saveErr != nil {
		// The heartbeat or the metrics server failed, or the last save.
		a.log.Error().Err(saveErr).Msg("a background task failed")
	}
	st, fs := a.shipper.Stats(), a.follower.Stats()
	undelivered := st.Undelivered()
	summary := a.log.Info()
	code := exitOK
	if s.err != nil || saveErr != nil || undelivered > 0 || !s.ended {
		summary = a.log.Error().AnErr("error", errors.Join(s.err, saveErr))
		code = exitUndelivered
	}
	summary.Int64("lines_read", fs.Lines).Int64("records_shipped", st.Delivered).
		Int64("records_dropped", st.Dropped).Int64("records_undelivered", undelivered).
		Int64("records_resent_on_retry", st.Resent).Int64("retries", st.Retries).
		Stringer("drain_took", time.Since(drainStarted).Round(time.Millisecond)).
		Stringer("uptime", time.Since(started).Round(time.Second)).Int("exit_code", code).
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
