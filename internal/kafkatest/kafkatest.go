// Package kafkatest starts a real Kafka-protocol broker (kfake, over TCP on a
// random loopback port) for tests, and gives each test unique topic names.
// There is no mock here: clients talk the Kafka protocol to a real listener.
package kafkatest

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/schemas"
)

// Start starts a broker on a random port, closed when the test ends.
// dataDir may be empty (memory only).
func Start(t testing.TB, dataDir string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: dataDir})
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

var seq atomic.Int64

// Names returns schema names with a prefix unique to this test run.
func Names(t testing.TB) schemas.Names {
	return schemas.NewNames(fmt.Sprintf("t%d-%d.", time.Now().UnixNano()%1e6, seq.Add(1)))
}

// Client returns a franz-go client for addr, closed when the test ends. It
// partitions like sarama (see kafkautil.Partitioner).
func Client(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RecordPartitioner(kafkautil.Partitioner())}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("creating kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateCoreTopics creates the topics of n on addr.
func CreateCoreTopics(t testing.TB, addr string, n schemas.Names, partitions int32) {
	t.Helper()
	cl := Client(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafkautil.EnsureTopics(ctx, cl, kafkautil.CoreTopics(n, partitions)); err != nil {
		t.Fatal(err)
	}
}

// ReadAll consumes topic from the start until it has read want records or
// the timeout passes, and returns what it read.
func ReadAll(t testing.TB, addr, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := Client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// Eventually polls cond every 10ms until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ReadToEnd consumes every record of topic up to its end offsets as of the
// call, whatever their count.
func ReadToEnd(t testing.TB, addr, topic string, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ends, err := kadm.NewClient(Client(t, addr)).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("listing end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl := Client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s to its end: %v (partitions left: %v)", topic, ctx.Err(), left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset < end {
				out = append(out, r)
				if r.Offset+1 >= end {
					delete(left, r.Partition)
				}
			}
		})
	}
	return out
}

// ClientGoroutines counts the goroutines that franz-go clients (package
// kgo) started and that still run: a test that closes every client it made
// sees the count fall back to what it was before (poll with Eventually,
// since a closed client's goroutines end shortly after Close).
func ClientGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("created by github.com/twmb/franz-go/pkg/kgo.")) {
			count++
		}
	}
	return count
}
