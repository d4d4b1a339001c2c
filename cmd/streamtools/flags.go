package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/schemas"
)

// env returns the environment variable of a flag: --topic-prefix is
// STREAMTOOLS_TOPIC_PREFIX.
func env(flag string) cli.ValueSourceChain {
	return cli.EnvVars("STREAMTOOLS_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_")))
}

// Flags shared by several commands. Each command lists the ones it uses.
// They are functions, not package variables: a flag holds the value it
// parsed, so every newApp builds its own (tests run several apps in one
// process, some at once).

// Defaults of flags that more than one flag definition shares.
const (
	defaultBrokers = "127.0.0.1:9092"
	defaultDataDir = ".streamtools"
)

func flagBrokers() cli.Flag {
	return &cli.StringFlag{Name: "brokers", Value: defaultBrokers, Sources: env("brokers"),
		Usage: "Kafka bootstrap brokers, comma separated"}
}

// flagOperatorBrokers is the --brokers of the operator commands (customers,
// keys, dashboard users): without it, they use the broker of the
// streamtools dev running with --data-dir (operatorBrokers).
func flagOperatorBrokers() cli.Flag {
	return &cli.StringFlag{Name: "brokers", Sources: env("brokers"),
		Usage: "Kafka bootstrap brokers, comma separated (default: the broker of the streamtools dev running with --data-dir, else " + defaultBrokers + ")"}
}

// flagDevDataDir is the --data-dir of the operator commands: where they
// find what the streamtools dev running there wrote for them (its broker,
// its database); usage says which.
func flagDevDataDir(usage string) cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Value: defaultDataDir, Sources: env("data-dir"), Usage: usage}
}

func flagTopicPrefix() cli.Flag {
	return &cli.StringFlag{Name: "topic-prefix", Value: schemas.DefaultPrefix, Sources: env("topic-prefix"),
		Usage: "prefix of every topic and consumer group name"}
}

func flagGeneration() cli.Flag {
	return &cli.IntFlag{Name: "generation", Value: 1, Sources: env("generation"),
		Usage: "processor generation: bump it to rebuild every table from the start of the postbacks topic (see docs/operations.md, Processor generations)"}
}

func flagPartitions() cli.Flag {
	return &cli.IntFlag{Name: "partitions", Value: schemas.DefaultPartitions, Sources: env("partitions"),
		Usage: "partitions of the topics StreamTools creates (never change it for an existing postbacks topic)"}
}

func flagDataDir() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Value: defaultDataDir, Sources: env("data-dir"),
		Usage: "where the embedded broker (and dev's Postgres) keep their data across restarts"}
}

func flagDatabaseURL() cli.Flag {
	return &cli.StringFlag{Name: "database-url", Sources: env("database-url"),
		Usage: "PostgreSQL connection string, e.g. postgres://user:pass@host:5432/streamtools"}
}

// flagWidgetDomain is a flag of widgetd, the dashboard and dev.
func flagWidgetDomain() cli.Flag {
	return &cli.StringFlag{Name: "widget-domain", Value: "streamtools.io", Sources: env("widget-domain"),
		Usage: "domain of the public widget links https://{product}-widget-{customer}.{domain}/{influencer}/{campaign}"}
}

// kafkaFlags are the flags of every command that talks to Kafka.
func kafkaFlags() []cli.Flag {
	return []cli.Flag{flagBrokers(), flagTopicPrefix(), flagGeneration(), flagPartitions()}
}

// logFlags are the flags of every command that logs (see loggerFrom).
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Sources: env("log-level"),
			Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "text", Sources: env("log-format"),
			Usage: "text or json"},
	}
}

// flags joins lists of flags into a new slice.
func flags(lists ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func namesFrom(cmd *cli.Command) (schemas.Names, error) {
	n := schemas.Names{Prefix: cmd.String("topic-prefix"), Generation: cmd.Int("generation")}
	return n, n.Validate()
}

func brokersFrom(cmd *cli.Command) []string { return kafkautil.SplitBrokers(cmd.String("brokers")) }

// operatorBrokerAddrs are an operator command's brokers and where they came
// from, for the error that says they cannot be reached.
type operatorBrokerAddrs struct {
	addrs []string
	from  string // where the addresses came from
	hint  string // what to do when they cannot be reached
}

// unreachable is the error of a first request to the brokers that failed.
func (b operatorBrokerAddrs) unreachable(err error) error {
	return fmt.Errorf("reaching the Kafka brokers %s (%s; %s): %w", strings.Join(b.addrs, ","), b.from, b.hint, err)
}

// operatorBrokers are the brokers of the operator commands: --brokers, else
// STREAMTOOLS_BROKERS, else those of the streamtools dev running with
// --data-dir (the file it writes while it runs), else 127.0.0.1:9092.
func operatorBrokers(cmd *cli.Command) (operatorBrokerAddrs, error) {
	if v := cmd.String("brokers"); v != "" {
		if os.Getenv("STREAMTOOLS_BROKERS") == v {
			return operatorBrokerAddrs{kafkautil.SplitBrokers(v), "from STREAMTOOLS_BROKERS", "is Kafka running there? --brokers overrides it"}, nil
		}
		return operatorBrokerAddrs{kafkautil.SplitBrokers(v), "from --brokers", "is Kafka running there?"}, nil
	}
	file := filepath.Join(cmd.String("data-dir"), devBrokersFile)
	b, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return operatorBrokerAddrs{}, fmt.Errorf("reading the broker address of streamtools dev (or pass --brokers): %w", err)
	}
	if addrs := kafkautil.SplitBrokers(strings.TrimSpace(string(b))); len(addrs) > 0 {
		return operatorBrokerAddrs{addrs, "from " + file + ", which streamtools dev writes while it runs",
			"is that dev still running? else pass --brokers"}, nil
	}
	return operatorBrokerAddrs{[]string{defaultBrokers},
		"the default: no --brokers, no STREAMTOOLS_BROKERS, no streamtools dev running with --data-dir " + cmd.String("data-dir"),
		"start `streamtools dev` or `streamtools broker`, or pass --brokers"}, nil
}

func loggerFrom(cmd *cli.Command) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cmd.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", cmd.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cmd.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", cmd.String("log-format"))
	}
}
