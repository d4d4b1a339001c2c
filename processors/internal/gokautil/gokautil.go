// Package gokautil is the goka plumbing every StreamTools processor shares:
// the sarama configuration that keeps per-partition order and low latency,
// a topic manager fit for a single broker, a LevelDB storage directory wiped
// at start (the changelog is the only source of truth), a slog adapter, and
// dead-lettering. It holds no business logic.
package gokautil

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/streamtools/streamtools/processors/internal/procmetrics"
	"github.com/streamtools/streamtools/schemas"
)

// SaramaConfig returns the sarama configuration of every processor's
// consumers and topic manager (the producer is franz-go's: ProducerBuilder):
//   - new groups start at the OLDEST offset, so a new generation replays
//     the whole postbacks topic (goka's default is the newest);
//   - offsets committed every 100 ms (sarama's default is 1 s): after a
//     crash everything processed since the last commit is delivered again
//     (and the verdicts processor emits copies that rows skip), so a
//     shorter interval means less work after a restart;
//   - leader lookups retried for about 80 minutes, so a broker outage
//     stalls the consumers instead of failing them;
//   - a network read timeout longer than the rebalance timeout: a JoinGroup
//     waits for every member, a killed one included until its session
//     expires, and with sarama's 30 s read timeout a slow rebalance failed
//     the group with "i/o timeout" (measured in the chaos test). A broker
//     that is down refuses connections at once; the pipeline's probe
//     reports it.
func SaramaConfig() *sarama.Config {
	c := goka.DefaultConfig()
	c.Version = sarama.V2_1_0_0
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	// A killed member holds a rebalance until this timeout (measured on
	// kfake: 72 s to recover from a SIGKILLed instance with sarama's 60 s).
	c.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	c.Net.ReadTimeout = c.Consumer.Group.Rebalance.Timeout + 15*time.Second
	c.Metadata.Retry.Max = 20000 // x 250 ms: about 80 minutes
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	return c
}

// Options configures one goka processor.
type Options struct {
	// StateDir is the processor's local LevelDB directory. It is wiped at
	// start: goka then rebuilds it from the table changelog, which stays the
	// only source of truth (a local store that survived a crash may hold
	// writes the changelog never got). Each instance needs its own.
	StateDir string
	Log      *slog.Logger
	// ClientID names the Kafka clients, e.g. the group name.
	ClientID string
}

// ProcessorOptions returns the goka options of a processor: builders with
// SaramaConfig, a topic manager creating table and loop topics with
// replication factor 1 (ReplicationFactor overrides it), LevelDB storage in
// a freshly wiped StateDir.
func ProcessorOptions(o Options, replication int) ([]goka.ProcessorOption, error) {
	if o.StateDir == "" {
		return nil, fmt.Errorf("processors: StateDir is empty: set a local directory for the processor's state")
	}
	if err := os.RemoveAll(o.StateDir); err != nil {
		return nil, fmt.Errorf("wiping the local state in %s: %w", o.StateDir, err)
	}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the local state directory %s: %w", o.StateDir, err)
	}
	if replication < 1 {
		replication = 1
	}
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = replication
	tm.Stream.Replication = replication
	// The loop topic carries claims and releases in flight: keep them for a
	// week (goka's default is one hour), so that a processor down for longer
	// than that still finds them.
	tm.Stream.Retention = 7 * 24 * time.Hour
	return []goka.ProcessorOption{
		goka.WithClientID(o.ClientID),
		goka.WithLogger(Logger(o.Log)),
		goka.WithStorageBuilder(WriteBackBuilder(filepath.Clean(o.StateDir))),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(SaramaConfig(), tm)),
		goka.WithProducerBuilder(ProducerBuilder(o.Log)),
		goka.WithConsumerGroupBuilder(ContiguousCommits(goka.ConsumerGroupBuilderWithConfig(SaramaConfig()))),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(SaramaConfig())),
	}, nil
}

// slogLogger adapts slog to goka.Logger (goka logs at info level only).
type slogLogger struct{ l *slog.Logger }

// Logger returns a goka.Logger writing to l at debug level: goka's own
// messages are chatty (every partition start and stop).
func Logger(l *slog.Logger) goka.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return slogLogger{l.With("component", "goka")}
}

func (s slogLogger) Print(v ...any)                 { s.l.Debug(fmt.Sprint(v...)) }
func (s slogLogger) Println(v ...any)               { s.l.Debug(fmt.Sprint(v...)) }
func (s slogLogger) Printf(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }

// DeadLetter sends the current input record to the dead-letter topic with
// its reason and original bytes. The group must declare
// goka.Output(deadLetterTopic, schemas.DeadLetterCodec).
func DeadLetter(ctx goka.Context, topic goka.Stream, processor string, raw []byte, reason string) {
	ctx.Emit(topic, ctx.Key(), &schemas.DeadLetter{
		V:          schemas.DeadLetterVersion,
		Topic:      string(ctx.Topic()),
		Partition:  ctx.Partition(),
		Offset:     ctx.Offset(),
		Key:        []byte(ctx.Key()),
		Value:      raw,
		Reason:     reason,
		Processor:  processor,
		RecordedAt: time.Now().UTC(),
	})
}

// Processor is what every StreamTools goka group has: the goka processor,
// its group name, its dead-letter topic, log and metrics. Each group's
// package embeds it and adds its callbacks.
type Processor struct {
	Proc       *goka.Processor
	Group      string
	deadLetter goka.Stream
	log        *slog.Logger
	metrics    *procmetrics.Metrics
}

// NewProcessor builds the goka processor of graph with ProcessorOptions.
// The graph must declare goka.Output(deadLetter, schemas.DeadLetterCodec).
func NewProcessor(brokers []string, graph *goka.GroupGraph, o Options, replication int, deadLetter goka.Stream, m *procmetrics.Metrics) (*Processor, error) {
	opts, err := ProcessorOptions(o, replication)
	if err != nil {
		return nil, err
	}
	group := string(graph.Group())
	proc, err := goka.NewProcessor(brokers, graph, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: creating the goka processor: %w", group, err)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Processor{Proc: proc, Group: group, deadLetter: deadLetter, log: o.Log, metrics: m}, nil
}

// Run processes until ctx ends.
func (p *Processor) Run(ctx context.Context) error {
	if err := p.Proc.Run(ctx); err != nil {
		return fmt.Errorf("%s: running: %w", p.Group, err)
	}
	return nil
}

// WaitForReady blocks until the table (if any) is recovered and input
// flows.
func (p *Processor) WaitForReady(ctx context.Context) error { return p.Proc.WaitForReadyContext(ctx) }

// DeadLetter sends the current input record to the dead-letter topic with
// its reason, logs it and counts it.
func (p *Processor) DeadLetter(ctx goka.Context, raw []byte, reason string) {
	p.log.Warn("dead letter", "group", p.Group, "topic", ctx.Topic(), "partition", ctx.Partition(), "offset", ctx.Offset(), "reason", reason)
	DeadLetter(ctx, p.deadLetter, p.Group, raw, reason)
	p.metrics.DeadLetter(p.Group)
}

// Applied counts an input applied to a row, or skipped as applied already.
func (p *Processor) Applied(replay bool) { p.metrics.Applied(p.Group, replay) }

// GroupConfig is what configures every processor group.
type GroupConfig struct {
	Brokers []string
	Names   schemas.Names
	// StateDir is this instance's local table storage, wiped at start.
	StateDir string
	// Log receives the group's log lines; nil discards them.
	Log *slog.Logger
	// Replication of topics goka creates. Default 1 (one broker).
	Replication int
	// Metrics records applied inputs, verdicts and dead letters; nil
	// records nothing.
	Metrics *procmetrics.Metrics
}

// Validate names the field to fix; group prefixes the message.
func (c GroupConfig) Validate(group string) error {
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("%s: Brokers is empty: list at least one host:port", group)
	case c.StateDir == "":
		return fmt.Errorf("%s: StateDir is empty: set a local directory for the group's state", group)
	}
	return c.Names.Validate()
}

// NewGroup builds the goka processor of graph from c (see NewProcessor).
func (c GroupConfig) NewGroup(graph *goka.GroupGraph) (*Processor, error) {
	return NewProcessor(c.Brokers, graph, Options{StateDir: c.StateDir, Log: c.Log, ClientID: string(graph.Group())},
		c.Replication, goka.Stream(c.Names.DeadLetter()), c.Metrics)
}
