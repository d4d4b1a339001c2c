package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

// The demo customer of ARCHITECTURE.md: the seed document's curl example
// works against `streamtools dev` as written, with only the host changed.
const (
	demoCustomer   = "default"
	demoAccessKey  = "test-access-key"
	demoProduct    = "product"
	demoInfluencer = "influ_test"
)

// devEnv is what dev hands each part: the embedded broker, the names, and
// (once the postgres part ran) a database URL.
type devEnv struct {
	Cmd         *cli.Command
	Brokers     []string
	Names       schemas.Names
	Partitions  int
	DataDir     string
	DatabaseURL string // empty when no Postgres is available
	Log         *slog.Logger
	// Metrics is this run's registry: every part registers here, and each
	// HTTP part's /metrics serves all of it.
	Metrics *prometheus.Registry
	// Banner collects the "what runs where" lines printed at start.
	Banner []string
}

// devPart is one component of dev. Parts start in Order and stop in
// reverse order, each waiting for the previous one to return, except that
// intake parts stop first: nothing new is accepted while the rest drains.
type devPart struct {
	Name   string
	Order  int
	Intake bool
	// Start prepares the part and returns its Run function (nil when the
	// part has nothing to run, e.g. when it lacks Postgres).
	Start func(ctx context.Context, env *devEnv) (run func(context.Context) error, err error)
}

var devParts []devPart

// devFlags are the flags dev parts add; they live with their part.
var devFlags []cli.Flag

func registerDev(p devPart, flags ...cli.Flag) {
	devParts = append(devParts, p)
	devFlags = append(devFlags, flags...)
}

// devCommand is completed by finishDevFlags in main, once every file's init
// has registered its dev part and flags (init order is by file name).
var devCommand *cli.Command

// finishDevFlags adds the flags of every dev part to the dev command.
func finishDevFlags() {
	have := map[cli.Flag]bool{}
	for _, f := range devCommand.Flags {
		have[f] = true
	}
	for _, f := range devFlags {
		if !have[f] {
			devCommand.Flags = append(devCommand.Flags, f)
			have[f] = true
		}
	}
}

func init() {
	devCommand = &cli.Command{
		Name:  "dev",
		Usage: "run everything in one process on embedded defaults (broker, Postgres, every component)",
		Description: "Starts an in-process Kafka-protocol broker (kfake) on --broker-listen persisting to --data-dir,\n" +
			"seeds the demo customer (code default, access key test-access-key, product product),\n" +
			"and runs every component. Stop with Ctrl-C: components stop in order, intake first.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "broker-listen", Value: "127.0.0.1:9092", Sources: env("broker-listen"),
				Usage: "host:port of the embedded broker"},
			flagDataDir, flagTopicPrefix, flagGeneration, flagPartitions, flagDatabaseURL,
		}, logFlags()...),
		Action: runDev,
	}
	register(devCommand)
}

func runDev(ctx context.Context, cmd *cli.Command) error {
	log, err := loggerFrom(cmd)
	if err != nil {
		return err
	}
	names, err := namesFrom(cmd)
	if err != nil {
		return err
	}
	dataDir := cmd.String("data-dir")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("creating --data-dir %s: %w", dataDir, err)
	}
	b, err := broker.Start(broker.Config{
		Addr:       cmd.String("broker-listen"),
		DataDir:    filepath.Join(dataDir, "kafka"),
		Partitions: cmd.Int("partitions"),
	})
	if err != nil {
		return err
	}
	defer b.Close()

	env := &devEnv{
		Cmd: cmd, Brokers: []string{b.Addr()}, Names: names, Partitions: cmd.Int("partitions"),
		DataDir: dataDir, DatabaseURL: cmd.String("database-url"), Log: log,
		Metrics: newRegistry(),
	}
	env.Banner = append(env.Banner, fmt.Sprintf("broker     kafka://%s (embedded kfake, data in %s)", b.Addr(), filepath.Join(dataDir, "kafka")))
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := createTopics(setupCtx, env.Brokers, names, env.Partitions); err != nil {
		return err
	}
	if err := seedDemo(setupCtx, env); err != nil {
		return err
	}

	parts := append([]devPart(nil), devParts...)
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].Order < parts[j].Order })
	type running struct {
		name   string
		intake bool
		cancel context.CancelFunc
		done   chan error
	}
	var started []running
	stopAll := func() error {
		var order []running
		for _, r := range started {
			if r.intake {
				order = append(order, r)
			}
		}
		for i := len(started) - 1; i >= 0; i-- {
			if !started[i].intake {
				order = append(order, started[i])
			}
		}
		var errs []error
		for _, r := range order {
			r.cancel()
			if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
			}
			log.Info("stopped", "component", r.name)
		}
		return errors.Join(errs...)
	}
	failed := make(chan error, len(parts))
	for _, p := range parts {
		run, err := p.Start(ctx, env)
		if err != nil {
			return errors.Join(fmt.Errorf("starting %s: %w", p.Name, err), stopAll())
		}
		if run == nil {
			continue
		}
		pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
		r := running{name: p.Name, intake: p.Intake, cancel: pcancel, done: make(chan error, 1)}
		go func() {
			err := run(pctx)
			if pctx.Err() == nil {
				failed <- fmt.Errorf("%s stopped: %w", r.name, err)
			}
			r.done <- err
		}()
		started = append(started, r)
	}
	fmt.Fprintf(os.Stderr, "\nstreamtools dev is running (Ctrl-C stops it):\n  %s\n\n", strings.Join(env.Banner, "\n  "))

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-failed:
		log.Error("a component stopped; shutting down", "err", runErr)
	}
	return errors.Join(runErr, stopAll())
}

// seedDemo creates the demo customer and key unless they exist.
func seedDemo(ctx context.Context, env *devEnv) error {
	reg, err := tenant.NewRegistry(env.Brokers, env.Names, env.Log)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go reg.Run(rctx)
	select {
	case <-reg.Ready():
	case <-ctx.Done():
		return fmt.Errorf("reading the customers topic: %w", ctx.Err())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Brokers...))
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	if _, ok := reg.Customer(demoCustomer); !ok {
		err := tenant.PutCustomer(ctx, cl, env.Names, schemas.Customer{
			Code: demoCustomer, Name: "Demo brand", TimeZone: "Europe/Paris", AntiCheat: true,
			Products: map[string]schemas.Product{
				demoProduct: {Code: demoProduct, Title: "Sign-ups", Goal: 100},
			},
		})
		if err != nil {
			return fmt.Errorf("seeding the demo customer: %w", err)
		}
	}
	if _, err := reg.Authenticate(demoAccessKey); err != nil {
		if _, err := tenant.PutKey(ctx, cl, env.Names, demoAccessKey, demoCustomer, "demo (dev mode)"); err != nil {
			return fmt.Errorf("seeding the demo access key: %w", err)
		}
	}
	return nil
}
