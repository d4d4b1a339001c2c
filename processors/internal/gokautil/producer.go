package gokautil

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/kafkautil"
)

// ProducerBuilder returns goka's producer on franz-go, not idempotent, with
// one produce request in flight and unlimited retries: every emit and table
// write of a processor goes through it.
//
// The rows' watermarks need one source's records to one destination
// partition to land in the order they were emitted, with no gap; copies
// are harmless (a copy carries the same source position and rows skip it
// like any redelivery). A broker restarted from its data directory has
// forgotten the producers' sequence numbers and refuses their next batch
// (out-of-order sequence number). Measured with the broker SIGKILLed and
// back after 0.5 s (TestBrokerQuickRestart):
//   - sarama's idempotent producer fails that batch, bumps its epoch and
//     sends the batches queued behind it: a postback lost in about one run
//     of four;
//   - franz-go's idempotent producer resets its producer ID and resends,
//     but batches of one partition landed out of order (a claims decision
//     created 13 ms later stored before 300 earlier ones): a loss in about
//     one run of two;
//   - this producer: every batch is retried, in order, until the broker
//     takes it; a batch whose answer was lost may be stored twice. No loss
//     and no reordering in 20 runs of the outage tests.
//
// A batch fails only on an error franz-go does not retry (the broker refuses
// it for good: a write error inside the broker, a record over its size
// limit) or when the producer closes. franz-go then fails that batch and the
// ones queued behind it, but would send records produced after it: a gap.
// So the producer stops at its first failure: from then on every emit fails
// at once and the client closes (failing whatever is still buffered); goka
// stops the group, and the pipeline starts it again, with a new producer,
// from the committed offsets, which ContiguousCommits keeps before the
// failed input. What remains: a record produced between franz-go failing
// the batch and the hook below seeing it (the same goroutine of goka rarely
// gets there first).
//
// Keys go to partitions as sarama would put them (fnv-1a, sarama's sign
// rule: kafkautil.Partitioner): goka reads a table row from the partition
// of the input that wrote it. ProducerBuilder refuses a goka hasher other
// than goka's default fnv-1a.
func ProducerBuilder(log *slog.Logger) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		if err := checkFNV1a(hasher); err != nil {
			return nil, err
		}
		p := &producer{}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(brokers...),
			kgo.ClientID(clientID),
			kgo.RecordPartitioner(kafkautil.Partitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			// In order, copies allowed: see above.
			kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(1),
			// Send at once: each hop's latency is what a widget waits
			// for, and batches form by themselves under load while a
			// request is in flight.
			kgo.ProducerLinger(0),
			kgo.ProducerBatchCompression(kgo.NoCompression()),
			// A topic the broker does not know yet (a restarted broker
			// still loading) is retried like any other error instead of
			// failing its records after 4 tries.
			kgo.UnknownTopicRetries(-1),
			// goka emits inside its callbacks: a full buffer blocks the
			// callback, and the group cannot stop until the broker takes
			// records again. During an outage the inputs stall too, so
			// the buffer holds at most the prefetched inputs' records
			// (a few per input, ~0.4 KB each).
			kgo.MaxBufferedRecords(1<<20),
			kgo.WithHooks(failHook{p}),
			kgo.WithLogger(kgoLogger{log}),
		)
		if err != nil {
			return nil, fmt.Errorf("%s: creating the producer: %w", clientID, err)
		}
		p.cl = cl
		return p, nil
	}
}

// checkFNV1a refuses a goka hasher that does not hash like fnv-1a 32.
func checkFNV1a(hasher func() hash.Hash32) error {
	key := []byte("customer/product/influencer")
	h, want := hasher(), fnv.New32a()
	h.Write(key)
	want.Write(key)
	if h.Sum32() != want.Sum32() {
		return fmt.Errorf("gokautil: the goka hasher is not fnv-1a 32; the processors' producer partitions like sarama's default hasher only")
	}
	return nil
}

// producer is goka.Producer on a franz-go client.
type producer struct {
	cl        *kgo.Client
	failed    atomic.Pointer[error] // the first failure, if any
	closeOnce sync.Once
}

// failHook sees every record leave the producer's buffer, the failed ones
// before their promise runs.
type failHook struct{ p *producer }

func (h failHook) OnProduceRecordUnbuffered(_ *kgo.Record, err error) {
	if err != nil && !errors.Is(err, kgo.ErrClientClosed) && h.p.failed.CompareAndSwap(nil, &err) {
		// Not here: the hook runs inside the client, which Close waits for.
		go h.p.closeClient()
	}
}

func (p *producer) closeClient() { p.closeOnce.Do(p.cl.Close) }

func (p *producer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

func (p *producer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	if err := p.failed.Load(); err != nil {
		finish(nil, fmt.Errorf("the producer stopped at its first failure (%w): the group restarts from its committed offsets", *err))
		return promise
	}
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value}
	for k, v := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: v})
	}
	// The context is never cancelled: an emit ends when the broker has the
	// record or the producer closes.
	p.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) { finish(nil, err) })
	return promise
}

// closeFlushTimeout bounds how long Close waits for buffered records (a
// broker that is down never takes them). Records still buffered then fail:
// their inputs are not committed and are processed again.
const closeFlushTimeout = 30 * time.Second

// Close sends what is buffered, for at most closeFlushTimeout, and closes
// the client, failing whatever is left.
func (p *producer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeFlushTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.closeClient()
	if err != nil {
		return fmt.Errorf("flushing the producer: %w", err)
	}
	return nil
}

// kgoLogger passes franz-go's log to slog at debug level, its errors at
// warn: during a broker outage franz-go warns at every reconnection
// attempt, and the pipeline's broker probe already logs the outage once at
// each end. Its info lines include the producer ID reset after a broker
// refused a batch.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if k.l == nil {
		return
	}
	keyvals = append(keyvals, "component", "producer")
	if level == kgo.LogLevelError {
		k.l.Warn(msg, keyvals...)
		return
	}
	k.l.Debug(msg, keyvals...)
}
