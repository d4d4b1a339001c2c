// Package supervise runs the parts of one process (the components of
// `streamtools dev`) in a fixed order and stops them in a fixed order.
//
// Parts start one after another, in the order given: a part may use what
// the parts before it prepared (dev's Postgres before the sink that writes
// to it). They stop intake first, then the others in reverse start order,
// each only after the one before it returned: the parts that take work in
// from outside (the HTTP edge) stop accepting it before anything they feed
// stops, so what was accepted drains through the rest. A part that fails to
// start stops the ones already running, in the same order.
//
// The package owns the order and the errors, not what a part does: a
// part's Start prepares it and returns its Run.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// DefaultSlowStop is how long Stop waits for a part before it warns that the
// part is slow to stop (see SlowStop).
const DefaultSlowStop = 10 * time.Second

// Option changes how a Supervisor stops its parts.
type Option func(*config)

type config struct {
	slowStop   time.Duration
	slowHint   string
	onStopping func(part string)
}

// SlowStop makes Stop log a warning each time a part has been stopping for
// another after, naming the part and adding hint when it is not empty (what
// the user can do instead of waiting). The default is DefaultSlowStop with
// no hint; after <= 0 turns the warning off. Stop still waits: a part that
// never returns blocks it.
func SlowStop(after time.Duration, hint string) Option {
	return func(c *config) { c.slowStop, c.slowHint = after, hint }
}

// OnStopping registers fn, which Stop calls with a part's name just before it
// asks that part to stop, and with "" once every part returned: what a
// process that gives up waiting can say it was waiting for. fn must not
// block.
func OnStopping(fn func(part string)) Option {
	return func(c *config) { c.onStopping = fn }
}

// Part is one component of a supervised process.
type Part struct {
	// Name names the part in errors and logs.
	Name string
	// Intake marks a part that takes work in from outside the process (the
	// HTTP edge). Intake parts stop first.
	Intake bool
	// Start prepares the part, after every part before it started, and
	// returns the function that runs it until its context is cancelled.
	// It returns a nil run when the part has nothing to run (it lacks
	// something it needs and said so). An error stops the parts already
	// running.
	Start func(ctx context.Context) (run func(context.Context) error, err error)
}

// Supervisor runs the parts Start started. Stop and Wait stop them.
type Supervisor struct {
	log     *slog.Logger
	cfg     config
	running []*running // in start order
	// onOwn receives the name of each part whose Run returned before Stop
	// asked it to; it has room for every part, so no Run ever blocks on it.
	onOwn chan string

	stopOnce sync.Once
	stopErr  error // what the first Stop returned
}

type running struct {
	name   string
	intake bool
	cancel context.CancelFunc
	done   chan result // receives Run's result, once
}

type result struct {
	err   error
	onOwn bool // Run returned before its context was cancelled
}

// Start calls the Start of each part in order and runs what they return,
// each in its own goroutine. A Run's context is not ctx's child: cancelling
// ctx stops nothing, so that Stop can stop the parts one at a time, in
// order. When a part's Start fails, Start stops the parts already running
// and returns the failure together with whatever they returned. A nil log
// logs nothing.
func Start(ctx context.Context, log *slog.Logger, parts []Part, opts ...Option) (*Supervisor, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := config{slowStop: DefaultSlowStop}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Supervisor{log: log, cfg: cfg, onOwn: make(chan string, len(parts))}
	for _, p := range parts {
		if p.Start == nil {
			return nil, errors.Join(fmt.Errorf("supervise: part %q has no Start", p.Name), s.Stop())
		}
		run, err := p.Start(ctx)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("starting %s: %w", p.Name, err), s.Stop())
		}
		if run == nil {
			continue
		}
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := &running{name: p.Name, intake: p.Intake, cancel: cancel, done: make(chan result, 1)}
		go func() {
			err := run(rctx)
			own := rctx.Err() == nil
			if own {
				s.onOwn <- r.name
			}
			r.done <- result{err: err, onOwn: own}
		}()
		s.running = append(s.running, r)
	}
	return s, nil
}

// Wait returns once ctx is done or a part's Run returned before it was
// asked to stop, after stopping every part (Stop). It returns what Stop
// returns, which includes why that part returned.
func (s *Supervisor) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case name := <-s.onOwn:
		s.log.Error("a component stopped on its own; stopping the others", "component", name)
	}
	return s.Stop()
}

// stopOrder is the order Stop stops the running parts in: intake parts in
// start order, then the others in reverse start order.
func (s *Supervisor) stopOrder() []*running {
	var order []*running
	for _, r := range s.running {
		if r.intake {
			order = append(order, r)
		}
	}
	for i := len(s.running) - 1; i >= 0; i-- {
		if !s.running[i].intake {
			order = append(order, s.running[i])
		}
	}
	return order
}

// Stop stops the parts, intake first and then the others in reverse start
// order, cancelling each one's context and waiting for its Run to return
// (warning while it is slow, see SlowStop) before cancelling the next. It
// returns the errors the Runs returned, each prefixed with its part's name,
// except context.Canceled from a part that was asked to stop. A Run that
// returned on its own is an error even when it returned nil. Stop is safe to
// call more than once, and concurrently; every call returns the first's
// result.
func (s *Supervisor) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		for _, r := range s.stopOrder() {
			if s.cfg.onStopping != nil {
				s.cfg.onStopping(r.name)
			}
			r.cancel()
			res := s.await(r)
			switch {
			case res.onOwn && res.err == nil:
				errs = append(errs, fmt.Errorf("%s: stopped before it was asked to", r.name))
			case res.err != nil && (res.onOwn || !errors.Is(res.err, context.Canceled)):
				errs = append(errs, fmt.Errorf("%s: %w", r.name, res.err))
			}
			s.log.Info("stopped", "component", r.name)
		}
		s.stopErr = errors.Join(errs...)
		if s.cfg.onStopping != nil {
			s.cfg.onStopping("")
		}
	})
	return s.stopErr
}

// await waits for r's Run to return, logging a warning each time it has
// been stopping for another cfg.slowStop.
func (s *Supervisor) await(r *running) result {
	if s.cfg.slowStop <= 0 {
		return <-r.done
	}
	tick := time.NewTicker(s.cfg.slowStop)
	defer tick.Stop()
	began := time.Now()
	for {
		select {
		case res := <-r.done:
			return res
		case <-tick.C:
			attrs := []any{"component", r.name, "waited", time.Since(began).Round(time.Second)}
			if s.cfg.slowHint != "" {
				attrs = append(attrs, "hint", s.cfg.slowHint)
			}
			s.log.Warn("a component is slow to stop; still waiting for it", attrs...)
		}
	}
}
