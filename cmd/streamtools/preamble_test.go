package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/urfave/cli/v3"
)

// runWithPreamble runs a command with --metrics-listen and the log flags
// whose action is newPreamble then p.run(body, ready).
func runWithPreamble(t *testing.T, addr string, body func(context.Context) error, ready func() bool) error {
	t.Helper()
	cmd := &cli.Command{
		Name:  "component",
		Flags: flags([]cli.Flag{&cli.StringFlag{Name: "metrics-listen"}}, logFlags()),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			p, err := newPreamble(cmd)
			if err != nil {
				return err
			}
			return p.run(ctx, cmd, body, ready)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cmd.Run(ctx, []string{"component", "--metrics-listen", addr, "--log-level", "warn"})
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestPreambleMetricsListener: --metrics-listen serves the command's
// registry and /readyz while the component runs, and nothing once it
// returned; a listener that cannot start is the command's error.
func TestPreambleMetricsListener(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var ready atomic.Bool
	err := runWithPreamble(t, addr, func(ctx context.Context) error {
		if code, body := get(t, "http://"+addr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
			t.Errorf("/metrics: %d %.200s", code, body)
		}
		if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") {
			t.Errorf("/readyz before ready: %d %s", code, body)
		}
		ready.Store(true)
		if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready"`) {
			t.Errorf("/readyz once ready: %d %s", code, body)
		}
		return nil
	}, ready.Load)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the metrics listener still accepts connections after the component returned")
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ran := false
	err = runWithPreamble(t, busy.Addr().String(), func(context.Context) error { ran = true; return nil }, nil)
	if err == nil || !strings.Contains(err.Error(), "--metrics-listen") || ran {
		t.Fatalf("a busy --metrics-listen: err %v, component ran %v; want an error naming the flag and no run", err, ran)
	}
}
