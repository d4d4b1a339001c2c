package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v3"
	"golang.org/x/sync/errgroup"

	"github.com/streamtools/streamtools/schemas"
)

// preamble is what every command that runs a component starts with, read
// from the command's flags once (newPreamble) instead of in each command.
// main's signal context is the other half: the commands' ctx is cancelled
// on SIGINT and SIGTERM.
type preamble struct {
	// Log is the logger of --log-level and --log-format.
	Log *slog.Logger
	// Names are the topic and group names of --topic-prefix and
	// --generation; the zero Names for a command without --generation.
	Names schemas.Names
	// Metrics is the command's own registry, with the Go and process
	// collectors: the component registers on it, and it is what /metrics
	// serves (the component's own, or --metrics-listen's).
	Metrics *prometheus.Registry
}

func newPreamble(cmd *cli.Command) (*preamble, error) {
	log, err := loggerFrom(cmd)
	if err != nil {
		return nil, err
	}
	p := &preamble{Log: log, Metrics: prometheus.NewRegistry()}
	p.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if hasFlag(cmd, "generation") {
		if p.Names, err = namesFrom(cmd); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// hasFlag reports whether cmd defines the flag name (set or not).
func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// run runs a component until ctx is done, and beside it, when the command
// has a non-empty --metrics-listen (process and sink, which have no HTTP
// server of their own), an HTTP listener serving p.Metrics at /metrics and,
// when ready is not nil, /readyz: 200 {"status":"ready"} or 503
// {"status":"not ready"}. If the listener fails, run's context is cancelled
// and the listener's error returned; the listener shuts down once run
// returns.
func (p *preamble) run(ctx context.Context, cmd *cli.Command, run func(context.Context) error, ready func() bool) error {
	var addr string
	if hasFlag(cmd, "metrics-listen") {
		addr = cmd.String("metrics-listen")
	}
	if addr == "" {
		return run(ctx)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on --metrics-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: metricsHandler(p.Metrics, ready), ReadHeaderTimeout: 5 * time.Second}
	p.Log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving --metrics-listen %s: %w", addr, err)
		}
		return nil
	})
	g.Go(func() error {
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				p.Log.Warn("shutting the metrics listener down", "err", err)
			}
		}()
		return run(gctx)
	})
	return g.Wait()
}

func metricsHandler(reg *prometheus.Registry, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if ready != nil {
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if !ready() {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"status":"not ready"}`+"\n")
				return
			}
			io.WriteString(w, `{"status":"ready"}`+"\n")
		})
	}
	return mux
}
