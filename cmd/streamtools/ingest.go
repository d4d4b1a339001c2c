package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/ingest"
)

// ingestFlags are the edge's settings; the defaults are ingest.Config's.
func ingestFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Sources: env("ingest-listen"),
			Usage: "host:port the postback edge listens on"},
		&cli.DurationFlag{Name: "produce-timeout", Value: 1500 * time.Millisecond, Sources: env("produce-timeout"),
			Usage: "how long a request waits for Kafka's acknowledgement before the edge answers 503 with Retry-After"},
		&cli.DurationFlag{Name: "retry-after", Value: time.Second, Sources: env("retry-after"),
			Usage: "the Retry-After of 503 and 429 answers"},
		&cli.IntFlag{Name: "rate-limit", Value: 100000, Sources: env("rate-limit"),
			Usage: "postbacks per second per access key when the customer sets no rate_limit (-1: no default limit)"},
		&cli.IntFlag{Name: "body-limit", Value: 16 << 10, Sources: env("body-limit"),
			Usage: "largest body of POST /{access_key}, in bytes (413 above)"},
		&cli.IntFlag{Name: "batch-body-limit", Value: 1 << 20, Sources: env("batch-body-limit"),
			Usage: "largest body of POST /{access_key}/batch, in bytes (413 above)"},
		&cli.IntFlag{Name: "batch-max-items", Value: 1000, Sources: env("batch-max-items"),
			Usage: "most postbacks in one batch (400 above)"},
		&cli.IntFlag{Name: "max-conns", Value: 16384, Sources: env("max-conns"),
			Usage: "most concurrent connections"},
		&cli.DurationFlag{Name: "read-timeout", Value: 10 * time.Second, Sources: env("read-timeout"),
			Usage: "time to read one request"},
		&cli.DurationFlag{Name: "write-timeout", Value: 10 * time.Second, Sources: env("write-timeout"),
			Usage: "time to write one response"},
		&cli.DurationFlag{Name: "idle-timeout", Value: 120 * time.Second, Sources: env("idle-timeout"),
			Usage: "idle keep-alive connections are closed after this"},
		&cli.DurationFlag{Name: "linger", Value: 0, Sources: env("linger"),
			Usage: "how long the producer waits to fill a batch (0: batches fill while the previous request is in flight)"},
	}
}

func ingestCommand() *cli.Command {
	return &cli.Command{
		Name:  "ingest",
		Usage: "run the postback edge: POST/GET /{access_key} and POST /{access_key}/batch into the postbacks topic",
		Description: "Accepts the brands' postbacks, validates them, fingerprints the visitor with a daily salt and\n" +
			"drops the IP, and answers 202 only once Kafka acknowledged the record (acks=all).\n" +
			"Also serves /healthz, /readyz and /metrics. See docs/edge.md.",
		Flags:  flags(ingestFlags(), kafkaFlags(), logFlags()),
		Action: runIngest,
	}
}

// devIngestFlags are dev's flags for its edge.
func devIngestFlags() []cli.Flag {
	return []cli.Flag{&cli.StringFlag{Name: "ingest-listen", Value: "127.0.0.1:8080", Sources: env("ingest-listen"),
		Usage: "host:port of the postback edge"}}
}

func ingestConfig(cmd *cli.Command) ingest.Config {
	return ingest.Config{
		Addr:             cmd.String("listen"),
		ProduceTimeout:   cmd.Duration("produce-timeout"),
		RetryAfter:       cmd.Duration("retry-after"),
		DefaultRateLimit: float64(cmd.Int("rate-limit")),
		BodyLimit:        cmd.Int("body-limit"),
		BatchBodyLimit:   cmd.Int("batch-body-limit"),
		BatchMaxItems:    cmd.Int("batch-max-items"),
		MaxConns:         cmd.Int("max-conns"),
		ReadTimeout:      cmd.Duration("read-timeout"),
		WriteTimeout:     cmd.Duration("write-timeout"),
		IdleTimeout:      cmd.Duration("idle-timeout"),
		Linger:           cmd.Duration("linger"),
	}
}

func runIngest(ctx context.Context, cmd *cli.Command) error {
	p, err := newPreamble(cmd)
	if err != nil {
		return err
	}
	cfg := ingestConfig(cmd)
	cfg.Brokers, cfg.Names, cfg.Log, cfg.Registerer = brokersFrom(cmd), p.Names, p.Log, p.Metrics
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := createTopics(setup, cfg.Brokers, p.Names, cmd.Int("partitions")); err != nil {
		return fmt.Errorf("creating the topics (is Kafka at --brokers %s?): %w", cmd.String("brokers"), err)
	}
	s, err := ingest.New(cfg)
	if err != nil {
		return err
	}
	return p.run(ctx, cmd, s.Run, nil)
}

func startDevIngest(ctx context.Context, env *devEnv) (func(context.Context) error, error) {
	addr := env.Cmd.String("ingest-listen")
	s, err := ingest.New(ingest.Config{
		Addr:    addr,
		Brokers: env.Brokers,
		Names:   env.Names,
		Log:     env.Log.With("component", "ingest"),

		Registerer: env.Metrics,
	})
	if err != nil {
		return nil, devListenError("--ingest-listen", "address", addr, err)
	}
	url := "http://" + browsable(s.Addr())
	env.Banner = append(env.Banner,
		fmt.Sprintf("ingest     %s/{access_key}  (demo: curl -X POST %s/%s -d '{\"influencer_id\":\"%s\",\"product\":\"%s\"}')",
			url, url, demoAccessKey, demoInfluencer, demoProduct))
	return s.Run, nil
}
