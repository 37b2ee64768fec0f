// Package probe tells from outside whether a running tailcar is alive.
//
// The runner's loops mark their Pulses busy or waiting; a Heartbeat
// touches a file next to the positions (on the shared, writable volume,
// since the root filesystem may be read-only) while no loop is stuck in a
// step. `tailcar probe` checks that file's age. Waiting for a backend that
// is down or slow is not being wedged, and restarting the sidecar would
// not help.
package probe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// StallAfter is how long one step of a loop may take before the loop
// counts as wedged.
const StallAfter = 10 * time.Second

// Pulse tells whether one loop is making progress. The loop calls Busy
// when it starts a step and Waiting when it blocks on its input or on a
// backend; it counts as wedged only when one step stays busy for
// StallAfter. Waiting needs no timer to prove itself alive, so an idle
// tailcar stays asleep, and a slow or down backend is never a stall.
type Pulse struct {
	name string
	// busySince is when the current step began, Unix nanoseconds; 0 while
	// the loop waits.
	busySince atomic.Int64
}

// NewPulse returns a Pulse for a loop that has not started a step yet.
func NewPulse(name string) *Pulse { return &Pulse{name: name} }

// Busy records that the loop has started a step.
func (p *Pulse) Busy() { p.busySince.Store(time.Now().UnixNano()) }

// Waiting records that the loop is blocked on its input or on a backend.
func (p *Pulse) Waiting() { p.busySince.Store(0) }

// busyFor is how long the current step has taken; 0 while waiting.
func (p *Pulse) busyFor(now time.Time) time.Duration {
	since := p.busySince.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}

// Heartbeat keeps the heartbeat file fresh while no loop is stuck.
type Heartbeat struct {
	path       string
	maxAge     time.Duration
	stallAfter time.Duration
	pulses     []*Pulse
	log        zerolog.Logger
}

// NewHeartbeat returns a Heartbeat writing path; the probe fails when the
// file is older than maxAge.
func NewHeartbeat(path string, maxAge time.Duration, log zerolog.Logger, pulses ...*Pulse) *Heartbeat {
	return &Heartbeat{path: path, maxAge: maxAge, stallAfter: StallAfter, pulses: pulses, log: log}
}

// Write writes the heartbeat file now, so that a location where it cannot
// be written is found at start rather than by a probe that fails later.
func (h *Heartbeat) Write() error {
	if err := os.WriteFile(h.path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("write heartbeat: %w", err)
	}
	return nil
}

// Run writes the heartbeat until ctx ends, then removes it: a stopped
// tailcar is not a live one.
func (h *Heartbeat) Run(ctx context.Context) error {
	if err := h.Write(); err != nil {
		return err
	}
	defer os.Remove(h.path)
	// Beat often enough that one late tick never reaches maxAge.
	every := min(max(h.maxAge/4, 50*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	stalled := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			name := h.stalled(now)
			if name != stalled {
				if name != "" {
					h.log.Error().Str("loop", name).Stringer("stuck_for", StallAfter).Msg("a loop is stuck in one step; the heartbeat stops so the probe fails")
				} else {
					h.log.Info().Str("loop", stalled).Msg("the loop moves again")
				}
				stalled = name
			}
			if name != "" {
				continue
			}
			if err := os.Chtimes(h.path, now, now); err != nil {
				// The file may have been removed from under us; write it anew.
				_ = h.Write()
			}
		}
	}
}

func (h *Heartbeat) stalled(now time.Time) string {
	for _, p := range h.pulses {
		if p.busyFor(now) > h.stallAfter {
			return p.name
		}
	}
	return ""
}

// Check reports whether the tailcar that writes the heartbeat at path is
// alive, with one line saying why.
func Check(path string, maxAge time.Duration, now time.Time) (bool, string) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Sprintf("unhealthy: no heartbeat at %s; tailcar is not running", path)
	}
	if err != nil {
		return false, fmt.Sprintf("unhealthy: %v", err)
	}
	pid := 0
	if data, err := os.ReadFile(path); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	}
	if pid > 0 && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false, fmt.Sprintf("unhealthy: tailcar (pid %d) is gone", pid)
	}
	age := now.Sub(fi.ModTime())
	if age > maxAge {
		return false, fmt.Sprintf("unhealthy: no heartbeat for %s (limit %s); tailcar (pid %d) is frozen or wedged", age.Round(time.Millisecond), maxAge, pid)
	}
	return true, fmt.Sprintf("healthy: heartbeat %s ago (pid %d)", max(age, 0).Round(time.Millisecond), pid)
}
