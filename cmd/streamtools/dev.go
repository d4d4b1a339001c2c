package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/supervise"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

// The demo customer: the README's "Try it" postback works against
// `streamtools dev` as written.
const (
	demoCustomer   = "default"
	demoAccessKey  = "test-access-key"
	demoProduct    = "product"
	demoInfluencer = "influ_test"
)

// The files dev writes in --data-dir while it runs, and removes when it
// stops, for the operator commands to find what it runs: its broker's
// address (operatorBrokers) and its database URL (operatorDatabaseURL).
const (
	devBrokersFile     = "brokers"
	devDatabaseURLFile = "database-url"
)

// devEnv is what dev hands each part: the names, and what the parts before
// it prepared (the broker's address, the database URL, widgetd's URL).
type devEnv struct {
	Cmd *cli.Command
	// Brokers is the embedded broker's address, once the broker part ran.
	Brokers     []string
	Names       schemas.Names
	Partitions  int
	DataDir     string
	DatabaseURL string // empty when no Postgres is available
	// WidgetdURL is http://host:port of widgetd, once its part ran: the
	// dashboard links widgets there unless --dashboard-widget-base-url says
	// otherwise.
	WidgetdURL string
	Log        *slog.Logger
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
	fl := []cli.Flag{flagDataDir(), flagTopicPrefix(), flagGeneration(), flagPartitions(), flagDatabaseURL()}
	for _, p := range parts {
		fl = append(fl, p.Flags...)
	}
	return &cli.Command{
		Name:  "dev",
		Usage: "run everything in one process on embedded defaults (broker, Postgres, every component)",
		Description: "Starts an in-process Kafka-protocol broker (kfake) on --broker-listen persisting to --data-dir,\n" +
			"seeds the demo customer (code default, access key test-access-key, product product),\n" +
			"and runs every component. Stop with Ctrl-C: components stop in order, intake first;\n" +
			"a second Ctrl-C exits at once. While it runs, it writes its broker's address and its\n" +
			"database URL in --data-dir (brokers, database-url), where customers, keys and\n" +
			"dashboard users find them.",
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
	env := &devEnv{
		Cmd: cmd, Names: pre.Names, Partitions: cmd.Int("partitions"),
		DataDir: dataDir, DatabaseURL: cmd.String("database-url"), Log: pre.Log,
		Metrics: pre.Metrics,
	}
	sparts := make([]supervise.Part, len(parts))
	for i, p := range parts {
		sparts[i] = supervise.Part{Name: p.Name, Intake: p.Intake,
			Start: func(ctx context.Context) (func(context.Context) error, error) { return p.Start(ctx, env) }}
	}
	opts := []supervise.Option{supervise.SlowStop(supervise.DefaultSlowStop, "press Ctrl-C again to exit at once")}
	if st := stopStatusFrom(ctx); st != nil {
		opts = append(opts, supervise.OnStopping(st.set))
	}
	sup, err := supervise.Start(ctx, env.Log, sparts, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.Root().ErrWriter, "\nstreamtools dev is running (Ctrl-C stops it):\n  %s\n\n", strings.Join(env.Banner, "\n  "))
	return sup.Wait(ctx)
}

// devBrokerFlags are dev's flags for its broker.
func devBrokerFlags() []cli.Flag {
	return []cli.Flag{&cli.StringFlag{Name: "broker-listen", Value: defaultBrokers, Sources: env("broker-listen"),
		Usage: "host:port of the embedded broker"}}
}

// startDevBroker starts the embedded broker, creates the topics, seeds the
// demo customer and, until the broker stops, writes its address in
// <data-dir>/brokers for the operator commands (operatorBrokers).
func startDevBroker(ctx context.Context, env *devEnv) (func(context.Context) error, error) {
	addr := env.Cmd.String("broker-listen")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--broker-listen %q: %w (want host:port)", addr, err)
	}
	kafkaDir := filepath.Join(env.DataDir, "kafka")
	b, err := broker.Start(broker.Config{Addr: addr, DataDir: kafkaDir, Partitions: env.Partitions})
	if err != nil {
		return nil, devListenError("--broker-listen", "address", addr, err)
	}
	env.Brokers = []string{b.Addr()}
	env.Banner = append(env.Banner, fmt.Sprintf("broker     kafka://%s (embedded kfake, data in %s)", b.Addr(), kafkaDir))
	file := filepath.Join(env.DataDir, devBrokersFile)
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = createTopics(setupCtx, env.Brokers, env.Names, env.Partitions)
	if err == nil {
		err = seedDemo(setupCtx, env)
	}
	if err == nil {
		if err = os.WriteFile(file, []byte(b.Addr()+"\n"), 0o644); err != nil {
			err = fmt.Errorf("writing the broker's address for the operator commands: %w", err)
		}
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	return func(ctx context.Context) error {
		<-ctx.Done()
		defer b.Close()
		if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", file, err)
		}
		return nil
	}, nil
}

// listenError is a dev part's failure to listen, said in terms of the dev
// flag that sets the address.
type listenError struct {
	flag, what, addr string // e.g. "--ingest-listen", "address", "127.0.0.1:8080"
	op               *net.OpError
}

func (e *listenError) Error() string {
	if errors.Is(e.op, syscall.EADDRINUSE) {
		return fmt.Sprintf("%s is in use (another streamtools dev?): pass %s to use another %s", e.addr, e.flag, e.what)
	}
	return fmt.Sprintf("cannot listen on %s (%v): pass %s to use another %s", e.addr, e.op.Err, e.flag, e.what)
}

func (e *listenError) Unwrap() error { return e.op }

// devListenError says err, a part's failure to listen on addr, in terms of
// the dev flag that sets what (the address, the port); other errors it
// returns as they are.
func devListenError(flag, what, addr string, err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "listen" {
		return &listenError{flag: flag, what: what, addr: addr, op: op}
	}
	return err
}

// browsable is addr as a browser on this machine reaches it: a listener on
// every interface (0.0.0.0, [::]) at 127.0.0.1.
func browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// dataDirArg is what a command printed for the user to run needs to find
// the dev running with dataDir: nothing for the default.
func dataDirArg(dataDir string) string {
	if dataDir == defaultDataDir {
		return ""
	}
	return " --data-dir " + shellQuote(dataDir)
}

// shellQuote quotes s for a POSIX shell, unless it needs no quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+=,-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
