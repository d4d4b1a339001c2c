package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/supervise"
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
	// Metrics is this run's registry (the preamble's): every part registers
	// here, and each HTTP part's /metrics serves all of it.
	Metrics *prometheus.Registry
	// Banner collects the "what runs where" lines printed at start.
	Banner []string
}

// devPart is one component of dev. main.go's devParts lists them in start
// order; internal/supervise starts them in that order and stops them intake
// first, then the others in reverse order.
type devPart struct {
	Name string
	// Intake marks the part that takes postbacks in (the edge): it stops
	// first, so that nothing new is accepted while the rest drains.
	Intake bool
	// Flags are the part's own flags, added to dev's.
	Flags []cli.Flag
	// Start prepares the part and returns its Run function (nil when the
	// part has nothing to run, e.g. when it lacks Postgres).
	Start func(ctx context.Context, env *devEnv) (run func(context.Context) error, err error)
}

// devCommand is `streamtools dev`: parts, with their flags.
func devCommand(parts []devPart) *cli.Command {
	fl := []cli.Flag{
		&cli.StringFlag{Name: "broker-listen", Value: "127.0.0.1:9092", Sources: env("broker-listen"),
			Usage: "host:port of the embedded broker"},
		flagDataDir(), flagTopicPrefix(), flagGeneration(), flagPartitions(), flagDatabaseURL(),
	}
	for _, p := range parts {
		fl = append(fl, p.Flags...)
	}
	return &cli.Command{
		Name:  "dev",
		Usage: "run everything in one process on embedded defaults (broker, Postgres, every component)",
		Description: "Starts an in-process Kafka-protocol broker (kfake) on --broker-listen persisting to --data-dir,\n" +
			"seeds the demo customer (code default, access key test-access-key, product product),\n" +
			"and runs every component. Stop with Ctrl-C: components stop in order, intake first.",
		Flags: flags(fl, logFlags()),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return runDev(ctx, cmd, parts)
		},
	}
}

func runDev(ctx context.Context, cmd *cli.Command, parts []devPart) error {
	pre, err := newPreamble(cmd)
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
	defer b.Close() // after every part stopped

	env := &devEnv{
		Cmd: cmd, Brokers: []string{b.Addr()}, Names: pre.Names, Partitions: cmd.Int("partitions"),
		DataDir: dataDir, DatabaseURL: cmd.String("database-url"), Log: pre.Log,
		Metrics: pre.Metrics,
	}
	env.Banner = append(env.Banner, fmt.Sprintf("broker     kafka://%s (embedded kfake, data in %s)", b.Addr(), filepath.Join(dataDir, "kafka")))
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := createTopics(setupCtx, env.Brokers, env.Names, env.Partitions); err != nil {
		return err
	}
	if err := seedDemo(setupCtx, env); err != nil {
		return err
	}

	sparts := make([]supervise.Part, len(parts))
	for i, p := range parts {
		sparts[i] = supervise.Part{Name: p.Name, Intake: p.Intake,
			Start: func(ctx context.Context) (func(context.Context) error, error) { return p.Start(ctx, env) }}
	}
	sup, err := supervise.Start(ctx, env.Log, sparts)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.Root().ErrWriter, "\nstreamtools dev is running (Ctrl-C stops it):\n  %s\n\n", strings.Join(env.Banner, "\n  "))
	return sup.Wait(ctx)
}

// seedDemo creates the demo customer and key unless they exist.
func seedDemo(ctx context.Context, env *devEnv) error {
	reg, err := tenant.NewRegistry(env.Brokers, env.Names, env.Log)
	if err != nil {
		return err
	}
	stop, err := runRegistry(ctx, reg, 30*time.Second)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Brokers...))
	if err != nil {
		return errors.Join(fmt.Errorf("creating kafka client: %w", err), stop())
	}
	defer cl.Close()
	return errors.Join(putDemo(ctx, cl, reg, env), stop())
}

// putDemo writes the demo customer and key, unless reg has them.
func putDemo(ctx context.Context, cl *kgo.Client, reg *tenant.Registry, env *devEnv) error {
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
