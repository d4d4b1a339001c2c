// Package testrun holds what tests of running components share: Start runs
// a component's Run(ctx) in the background of a test and stops it, once,
// when the test ends or when the test asks; Buffer collects its log;
// HeadThenHealthz checks that a HEAD is answered without a body.
package testrun

import (
	"context"
	"sync"
	"testing"
)

// Running is a component started by Start.
type Running struct {
	t      testing.TB
	name   string
	cancel context.CancelFunc
	exited chan struct{}
	err    error // set before exited is closed
	once   sync.Once
}

// Start runs run in a goroutine until the test ends or Stop is called.
// name labels the error reported if run fails.
func Start(t testing.TB, name string, run func(context.Context) error) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{t: t, name: name, cancel: cancel, exited: make(chan struct{})}
	go func() {
		r.err = run(ctx)
		close(r.exited)
	}()
	t.Cleanup(r.Stop)
	return r
}

// Exited is closed when run has returned; Err then tells why.
func (r *Running) Exited() <-chan struct{} { return r.exited }

// Err is what run returned; call it only after Exited is closed.
func (r *Running) Err() error { return r.err }

// Stop cancels run's context, waits for it to return and reports an error
// it returned. Safe to call more than once.
func (r *Running) Stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.exited
		if r.err != nil {
			r.t.Errorf("%s: %v", r.name, r.err)
		}
	})
}
