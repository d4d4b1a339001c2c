package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/supervise"
	"github.com/streamtools/streamtools/internal/testrun"
)

// envChildHang names a part of dev that, in a child started with
// envChildArgs, never returns once asked to stop (hangOnStop).
const envChildHang = "STREAMTOOLS_TEST_HANG"

// hangOnStop returns parts with the part name changed so that, once asked
// to stop, it stops as usual, prints "<name> hangs ..." on stderr, and then
// never returns: a part stuck in its shutdown.
func hangOnStop(parts []devPart, name string) []devPart {
	out := slices.Clone(parts)
	for i, p := range out {
		if p.Name != name {
			continue
		}
		start := p.Start
		out[i].Start = func(ctx context.Context, env *devEnv) (func(context.Context) error, error) {
			run, err := start(ctx, env)
			if run == nil || err != nil {
				return run, err
			}
			return func(ctx context.Context) error {
				err := run(ctx)
				fmt.Fprintf(os.Stderr, "%s hangs (its Run returned %v)\n", name, err)
				select {}
			}, nil
		}
	}
	return out
}

// TestDevSecondInterrupt: when a part hangs while dev stops, a second
// SIGINT exits at once, with status 1, naming the part (the first one only
// starts the shutdown; later ones were ignored).
func TestDevSecondInterrupt(t *testing.T) {
	ports := map[string]int{}
	for _, name := range []string{"broker", "ingest", "widgetd", "dashboard"} {
		ports[name] = freePort(t)
	}
	args, _ := json.Marshal([]string{"dev", "--data-dir", t.TempDir(), "--log-level", "warn",
		"--postgres-bin-dir", t.TempDir(), // no Postgres: quicker, and not needed
		"--broker-listen", fmt.Sprintf("127.0.0.1:%d", ports["broker"]),
		"--ingest-listen", fmt.Sprintf("127.0.0.1:%d", ports["ingest"]),
		"--widgetd-listen", fmt.Sprintf("127.0.0.1:%d", ports["widgetd"]),
		"--dashboard-listen", fmt.Sprintf("127.0.0.1:%d", ports["dashboard"])})
	dev := exec.Command(os.Args[0], "-test.run=^$")
	dev.Env = append(environWithoutPrefix("STREAMTOOLS_"), envChildArgs+"="+string(args), envChildHang+"=ingest")
	out := &testrun.Buffer{}
	dev.Stdout, dev.Stderr = out, out
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed once dev exited, with its status in exit
	var exit error
	go func() { exit = dev.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			dev.Process.Kill()
			<-done
		}
	})
	waitOutput := func(what, want string) {
		t.Helper()
		kafkatest.Eventually(t, 90*time.Second, what, func() bool {
			select {
			case <-done:
				t.Fatalf("dev exited (%v) before %s:\n%s", exit, what, out)
			default:
			}
			return strings.Contains(out.String(), want)
		})
	}
	waitOutput("dev to run", "is running (Ctrl-C stops it)")
	if err := dev.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitOutput("the ingest part to hang", "ingest hangs")
	if err := dev.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		var ee *exec.ExitError
		if !errors.As(exit, &ee) || ee.ExitCode() != 1 {
			t.Errorf("dev exited with %v after the second SIGINT, want status 1", exit)
		}
		if want := "streamtools: interrupt again: exiting at once, while ingest was still stopping\n"; !strings.Contains(out.String(), want) {
			t.Errorf("dev's output lacks %q:\n%s", want, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("dev still runs 10 s after a second SIGINT:\n%s", out)
	}
}

// environWithoutPrefix is this process's environment without the
// variables whose names start with prefix.
func environWithoutPrefix(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// TestDevPartsOrder: dev's broker is its first part, so that it starts
// before every other and stops after them all; the edge stops first.
func TestDevPartsOrder(t *testing.T) {
	var names []string
	var mu sync.Mutex
	var stops []string // guarded by mu
	var sparts []supervise.Part
	for _, p := range devParts() {
		names = append(names, p.Name)
		sparts = append(sparts, supervise.Part{Name: p.Name, Intake: p.Intake,
			Start: func(context.Context) (func(context.Context) error, error) {
				return func(ctx context.Context) error {
					<-ctx.Done()
					mu.Lock()
					stops = append(stops, p.Name)
					mu.Unlock()
					return ctx.Err()
				}, nil
			}})
	}
	if want := []string{"broker", "postgres", "ingest", "process", "sink", "widgetd", "dashboard"}; !slices.Equal(names, want) {
		t.Fatalf("dev's parts are %q, want %q", names, want)
	}
	s, err := supervise.Start(context.Background(), nil, sparts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ingest", "dashboard", "widgetd", "sink", "process", "postgres", "broker"}; !slices.Equal(stops, want) {
		t.Errorf("dev's parts stop in the order %q, want %q", stops, want)
	}
}
