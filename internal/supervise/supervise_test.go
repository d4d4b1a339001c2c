package supervise_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/supervise"
	"github.com/streamtools/streamtools/internal/testrun"
)

// recorder builds parts that record when they start and stop, and checks
// that a part is stopped only while the parts stopped before it are done
// and the ones after it still run.
type recorder struct {
	t       *testing.T
	running chan string // receives a part's name when its Run starts

	mu       sync.Mutex // guards the fields below
	starts   []string
	stops    []string // the parts that returned once asked to stop, in order
	returned map[string]bool
	ctxs     map[string]context.Context
	problems []string
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, running: make(chan string, 100), ctxs: map[string]context.Context{}, returned: map[string]bool{}}
}

type behaviour struct {
	intake    bool
	startErr  error                       // Start fails with it
	nothing   bool                        // Start returns a nil run
	onStop    error                       // Run returns it when cancelled (default ctx.Err())
	untilDone func(context.Context) error // Run returns what it returns (default: waits for cancel)
}

func (r *recorder) part(name string, b behaviour) supervise.Part {
	return supervise.Part{Name: name, Intake: b.intake, Start: func(ctx context.Context) (func(context.Context) error, error) {
		r.mu.Lock()
		r.starts = append(r.starts, name)
		r.mu.Unlock()
		if b.startErr != nil {
			return nil, b.startErr
		}
		if b.nothing {
			return nil, nil
		}
		return func(ctx context.Context) error {
			r.mu.Lock()
			r.ctxs[name] = ctx
			r.mu.Unlock()
			r.running <- name
			if b.untilDone != nil {
				err := b.untilDone(ctx)
				r.mu.Lock()
				r.returned[name] = true
				r.mu.Unlock()
				return err
			}
			<-ctx.Done()
			r.mu.Lock()
			defer r.mu.Unlock()
			// No part is asked to stop before the one being stopped has
			// returned: every other cancelled context is a stopped part's.
			for other, octx := range r.ctxs {
				if other != name && octx.Err() != nil && !r.returned[other] {
					r.problems = append(r.problems, fmt.Sprintf("%s was asked to stop while %s had not returned", other, name))
				}
			}
			r.stops = append(r.stops, name)
			r.returned[name] = true
			if b.onStop != nil {
				return b.onStop
			}
			return ctx.Err()
		}, nil
	}}
}

// waitRunning waits until n Runs started.
func (r *recorder) waitRunning(n int) {
	r.t.Helper()
	for range n {
		select {
		case <-r.running:
		case <-time.After(10 * time.Second):
			r.t.Fatal("the parts' Runs did not start")
		}
	}
}

func (r *recorder) check(wantStarts, wantStops []string) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Equal(r.starts, wantStarts) {
		r.t.Errorf("started %v, want %v", r.starts, wantStarts)
	}
	if !slices.Equal(r.stops, wantStops) {
		r.t.Errorf("stopped %v, want %v", r.stops, wantStops)
	}
	for _, p := range r.problems {
		r.t.Error(p)
	}
}

// TestStartAndStopOrder: parts start in the order given; they stop intake
// first, then the others in reverse start order, one at a time; a part
// with nothing to run is skipped; context.Canceled is no error; Stop is
// safe to call again.
func TestStartAndStopOrder(t *testing.T) {
	r := newRecorder(t)
	parts := []supervise.Part{
		r.part("postgres", behaviour{}),
		r.part("ingest", behaviour{intake: true}),
		r.part("process", behaviour{}),
		r.part("sink", behaviour{nothing: true}),
		r.part("widgetd", behaviour{}),
		r.part("dashboard", behaviour{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := supervise.Start(ctx, nil, parts)
	if err != nil {
		t.Fatal(err)
	}
	r.waitRunning(5)
	cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("a second Stop = %v, want nil", err)
	}
	r.check([]string{"postgres", "ingest", "process", "sink", "widgetd", "dashboard"},
		[]string{"ingest", "dashboard", "widgetd", "process", "postgres"})
}

// TestStartFailureStopsStartedParts: a part that fails to start stops the
// parts already running (intake first, then in reverse), the parts after it
// never start, and Start's error names the part and carries its error.
func TestStartFailureStopsStartedParts(t *testing.T) {
	r := newRecorder(t)
	errNoDB := errors.New("no database")
	parts := []supervise.Part{
		r.part("postgres", behaviour{}),
		r.part("ingest", behaviour{intake: true}),
		r.part("process", behaviour{}),
		r.part("sink", behaviour{startErr: errNoDB}),
		r.part("widgetd", behaviour{}),
	}
	s, err := supervise.Start(context.Background(), nil, parts)
	if s != nil || !errors.Is(err, errNoDB) || !strings.Contains(err.Error(), "starting sink") {
		t.Fatalf("Start = %v, %v; want nil and an error that says starting sink: no database", s, err)
	}
	r.check([]string{"postgres", "ingest", "process", "sink"}, []string{"ingest", "process", "postgres"})

	if _, err := supervise.Start(context.Background(), nil, []supervise.Part{{Name: "broken"}}); err == nil ||
		!strings.Contains(err.Error(), `"broken" has no Start`) {
		t.Fatalf("a part without Start: %v", err)
	}
}

// TestPartStoppingOnItsOwn: a Run that returns before it is asked to (with
// an error, nil, or context.Canceled of its own) stops the others, in
// order, and Wait says which part and why.
func TestPartStoppingOnItsOwn(t *testing.T) {
	errLost := errors.New("lost the broker")
	for _, c := range []struct {
		name    string
		returns error
		want    string
	}{
		{"error", errLost, "process: lost the broker"},
		{"nil", nil, "process: stopped before it was asked to"},
		{"its own cancel", context.Canceled, "process: context canceled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRecorder(t)
			fail := make(chan struct{})
			parts := []supervise.Part{
				r.part("postgres", behaviour{}),
				r.part("ingest", behaviour{intake: true}),
				r.part("process", behaviour{untilDone: func(context.Context) error { <-fail; return c.returns }}),
				r.part("widgetd", behaviour{}),
			}
			s, err := supervise.Start(context.Background(), nil, parts)
			if err != nil {
				t.Fatal(err)
			}
			r.waitRunning(4)
			close(fail)
			err = s.Wait(context.Background()) // not cancelled: only the part ends it
			if err == nil || err.Error() != c.want {
				t.Fatalf("Wait = %v, want %q", err, c.want)
			}
			if c.returns != nil && !errors.Is(err, c.returns) {
				t.Errorf("Wait = %v does not wrap %v", err, c.returns)
			}
			r.check([]string{"postgres", "ingest", "process", "widgetd"}, []string{"ingest", "widgetd", "postgres"})
		})
	}
}

// TestStopErrors: what a part returns when stopped, other than
// context.Canceled, is Stop's error, named; every part still stops, and a
// second Stop returns the same.
func TestStopErrors(t *testing.T) {
	r := newRecorder(t)
	errFlush := errors.New("flushing the producer: broker gone")
	parts := []supervise.Part{
		r.part("process", behaviour{}),
		r.part("sink", behaviour{onStop: errFlush}),
		r.part("widgetd", behaviour{}),
	}
	s, err := supervise.Start(context.Background(), nil, parts)
	if err != nil {
		t.Fatal(err)
	}
	r.waitRunning(3)
	err = s.Stop()
	if !errors.Is(err, errFlush) || err.Error() != "sink: flushing the producer: broker gone" {
		t.Fatalf("Stop = %v, want sink: %v", err, errFlush)
	}
	if again := s.Stop(); again != err {
		t.Fatalf("a second Stop = %v, want the first's %v", again, err)
	}
	r.check([]string{"process", "sink", "widgetd"}, []string{"widgetd", "sink", "process"})
}

// TestSlowStop: while a part is slow to stop, Stop logs a warning that
// names it (with the hint), and OnStopping says which part Stop is waiting
// for, then "" once every part returned.
func TestSlowStop(t *testing.T) {
	r := newRecorder(t)
	release := make(chan struct{})
	parts := []supervise.Part{
		r.part("broker", behaviour{}),
		r.part("ingest", behaviour{intake: true}),
		r.part("process", behaviour{untilDone: func(ctx context.Context) error {
			<-ctx.Done()
			<-release
			return ctx.Err()
		}}),
		r.part("widgetd", behaviour{}),
	}
	var logs testrun.Buffer
	var mu sync.Mutex
	var stopping []string // guarded by mu
	current := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(stopping)
	}
	s, err := supervise.Start(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), parts,
		supervise.SlowStop(20*time.Millisecond, "press Ctrl-C again to exit at once"),
		supervise.OnStopping(func(part string) {
			mu.Lock()
			stopping = append(stopping, part)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	r.waitRunning(4)
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()

	const warning = `msg="a component is slow to stop; still waiting for it" component=process waited=`
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), warning) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the slow part; the log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `hint="press Ctrl-C again to exit at once"`) {
		t.Errorf("the warning lacks the hint:\n%s", logs.String())
	}
	if got, want := current(), []string{"ingest", "widgetd", "process"}; !slices.Equal(got, want) {
		t.Errorf("while process is stopping, OnStopping was called with %q, want %q", got, want)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v before the slow part did", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got, want := current(), []string{"ingest", "widgetd", "process", "broker", ""}; !slices.Equal(got, want) {
		t.Errorf("OnStopping was called with %q, want %q", got, want)
	}
}
