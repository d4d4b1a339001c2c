package gokautil

import (
	"context"
	"sync"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// ContiguousCommits wraps a goka consumer group builder so that an input
// offset is committed only once the callbacks of every earlier message of
// its partition completed (their emits and table writes acknowledged).
//
// goka marks a message's offset (sarama MarkOffset(offset+1)) as soon as
// that message's own emits are acknowledged. With several brokers a later
// message can complete first, and its mark commits past an earlier message
// whose emits are still being retried: a crash then loses those emits for
// good, since the earlier message is never delivered again (for anticheat:
// a release whose row write landed but whose events did not). Here each
// partition's delivered offsets are recorded in order, and the mark only
// advances over a completed prefix. On a single broker acknowledgements
// already come in order, and this changes nothing.
func ContiguousCommits(inner goka.ConsumerGroupBuilder) goka.ConsumerGroupBuilder {
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		cg, err := inner(brokers, group, clientID)
		if err != nil {
			return nil, err
		}
		return &contiguousGroup{ConsumerGroup: cg}, nil
	}
}

type contiguousGroup struct{ sarama.ConsumerGroup }

func (g *contiguousGroup) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return g.ConsumerGroup.Consume(ctx, topics, &contiguousHandler{h: h})
}

// contiguousHandler gives the wrapped handler one contiguousSession per
// generation (sarama calls Setup, then ConsumeClaim per claim, then
// Cleanup, with the same session).
type contiguousHandler struct {
	h    sarama.ConsumerGroupHandler
	mu   sync.Mutex
	sess *contiguousSession
}

func (c *contiguousHandler) session(s sarama.ConsumerGroupSession) *contiguousSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil || c.sess.ConsumerGroupSession != s {
		c.sess = &contiguousSession{ConsumerGroupSession: s, parts: map[topicPartition]*offsetTracker{}}
	}
	return c.sess
}

func (c *contiguousHandler) Setup(s sarama.ConsumerGroupSession) error {
	return c.h.Setup(c.session(s))
}

func (c *contiguousHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	return c.h.Cleanup(c.session(s))
}

func (c *contiguousHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	cs := c.session(s)
	t := cs.tracker(claim.Topic(), claim.Partition())
	out := make(chan *sarama.ConsumerMessage)
	go func() {
		defer close(out)
		for msg := range claim.Messages() {
			t.delivered(msg.Offset) // before the handler can complete it
			select {
			case out <- msg:
			case <-s.Context().Done():
				return
			}
		}
	}()
	return c.h.ConsumeClaim(cs, &trackedClaim{ConsumerGroupClaim: claim, messages: out})
}

type trackedClaim struct {
	sarama.ConsumerGroupClaim
	messages chan *sarama.ConsumerMessage
}

func (c *trackedClaim) Messages() <-chan *sarama.ConsumerMessage { return c.messages }

type topicPartition struct {
	topic     string
	partition int32
}

type contiguousSession struct {
	sarama.ConsumerGroupSession
	mu    sync.Mutex
	parts map[topicPartition]*offsetTracker
}

func (s *contiguousSession) tracker(topic string, partition int32) *offsetTracker {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := topicPartition{topic, partition}
	t := s.parts[tp]
	if t == nil {
		t = &offsetTracker{done: map[int64]bool{}}
		s.parts[tp] = t
	}
	return t
}

// MarkOffset marks offset-1 completed, and marks upstream the offset after
// the completed prefix of delivered messages, if it advanced.
func (s *contiguousSession) MarkOffset(topic string, partition int32, offset int64, metadata string) {
	if next, ok := s.tracker(topic, partition).completed(offset - 1); ok {
		s.ConsumerGroupSession.MarkOffset(topic, partition, next, metadata)
	}
}

func (s *contiguousSession) MarkMessage(msg *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(msg.Topic, msg.Partition, msg.Offset+1, metadata)
}

// offsetTracker holds one partition's delivered, not yet committable
// offsets, in delivery order.
type offsetTracker struct {
	mu      sync.Mutex
	pending []int64
	done    map[int64]bool
}

func (t *offsetTracker) delivered(off int64) {
	t.mu.Lock()
	t.pending = append(t.pending, off)
	t.mu.Unlock()
}

// completed records that the message at off completed and returns the
// next offset to consume after the completed prefix, and whether that
// prefix grew. An offset never delivered is ignored.
func (t *offsetTracker) completed(off int64) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) == 0 || off < t.pending[0] {
		return 0, false
	}
	t.done[off] = true
	var next int64
	advanced := false
	for len(t.pending) > 0 && t.done[t.pending[0]] {
		delete(t.done, t.pending[0])
		next, advanced = t.pending[0]+1, true
		t.pending = t.pending[1:]
	}
	return next, advanced
}
