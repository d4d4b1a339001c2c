package gokautil

import (
	"context"
	"hash"
	"hash/crc32"
	"hash/fnv"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProducerHasher: the producer partitions like sarama's default
// hasher only, and says so for any other goka hasher.
func TestProducerHasher(t *testing.T) {
	if err := checkFNV1a(func() hash.Hash32 { return fnv.New32a() }); err != nil {
		t.Errorf("fnv-1a refused: %v", err)
	}
	if err := checkFNV1a(func() hash.Hash32 { return crc32.NewIEEE() }); err == nil {
		t.Error("crc32 accepted; keys would go to other partitions than goka's tables")
	}
}

// TestProducerStopsAtFirstFailure: the broker refuses a batch for good
// (UNKNOWN_SERVER_ERROR, which franz-go does not retry); every later emit
// fails too and stores nothing. franz-go alone sends the later one, and the
// partition holds record 2 without record 1: a gap the rows' watermarks
// would skip for good once record 1 is emitted again.
func TestProducerStopsAtFirstFailure(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var refused atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Swap(true) {
			return nil, nil, false
		}
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c.KeepControl()

	p, err := ProducerBuilder(nil)(c.ListenAddrs(), "test", func() hash.Hash32 { return fnv.New32a() })
	if err != nil {
		t.Fatal(err)
	}
	emit := func(v string) error {
		ch := make(chan error, 1)
		p.Emit("t", "k", []byte(v)).Then(func(err error) { ch <- err })
		select {
		case err := <-ch:
			return err
		case <-time.After(20 * time.Second):
			t.Fatalf("emit %s: no answer", v)
			return nil
		}
	}
	if err := emit("1"); err == nil {
		t.Fatal("emit 1 succeeded; the broker refused it")
	}
	if err := emit("2"); err == nil {
		t.Fatal("emit 2 succeeded after emit 1 failed: a gap in the partition")
	}
	if err := p.Close(); err != nil {
		t.Logf("close: %v", err)
	}

	// A later record from another client shows the partition's content.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("end")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for !slices.Contains(got, "end") && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, []string{"end"}) {
		t.Errorf("the partition holds %q, want only the later client's record", got)
	}
}
