// Package kafkautil is the shared Kafka plumbing of StreamTools: the
// sarama-compatible partitioner every producer that feeds goka must use, and
// creation of the topics StreamTools owns. It holds no names: those live in
// package schemas.
package kafkautil

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/schemas"
)

// Partitioner hashes keys exactly like sarama (FNV-1a 32), which goka uses
// for its table changelogs. A franz-go producer feeding goka with its default
// murmur2 partitioner would put keys on other partitions than goka's tables,
// and counts would double after a restart.
func Partitioner() kgo.Partitioner {
	return kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv1a32))
}

// fnv1a32 is hash/fnv's 32-bit FNV-1a without the allocation of a hasher
// per record (it runs once per postback on the edge's hot path).
func fnv1a32(b []byte) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for _, c := range b {
		h ^= uint32(c)
		h *= prime
	}
	return h
}

// PartitionFor returns the partition of key among n partitions, as
// Partitioner would choose it.
func PartitionFor(key []byte, n int32) int32 {
	p := int32(fnv1a32(key)) % n
	if p < 0 {
		p = -p
	}
	return p
}

// SplitBrokers turns "a:9092, b:9092" into a list.
func SplitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// TopicSpec describes a topic StreamTools creates.
type TopicSpec struct {
	Name       string
	Partitions int32
	Configs    map[string]*string
}

func ptr(s string) *string { return &s }

// CoreTopics are the topics the edge and the processors need before they
// start, the processors' tables included: goka would create them with a
// compact policy, and the claims table must not be compacted (see
// ClaimsTableRetention).
func CoreTopics(n schemas.Names, partitions int32) []TopicSpec {
	return CoreTopicsRetention(n, partitions, DefaultClaimsTableRetention)
}

// DefaultClaimsTableRetention is the retention of the claims table topic:
// the default event-id retention (7 days), maintenance grace and 2 days.
const DefaultClaimsTableRetention = 10 * 24 * time.Hour

// CoreTopicsRetention is CoreTopics with the claims table's retention.
//
// The claims table's changelog is the log of claim decisions that the
// verdicts processor reads as a stream: compaction would drop decisions it
// has not read yet, so the topic uses cleanup.policy=delete with a retention
// longer than any claim lives (goka rebuilds the table from what is kept).
func CoreTopicsRetention(n schemas.Names, partitions int32, claimsRetention time.Duration) []TopicSpec {
	if partitions <= 0 {
		partitions = schemas.DefaultPartitions
	}
	compact := map[string]*string{"cleanup.policy": ptr("compact")}
	claims := map[string]*string{
		"cleanup.policy": ptr("delete"),
		"retention.ms":   ptr(strconv.FormatInt(claimsRetention.Milliseconds(), 10)),
	}
	return []TopicSpec{
		{Name: n.Postbacks(), Partitions: partitions},
		{Name: n.Events(), Partitions: partitions},
		{Name: n.Claims(), Partitions: partitions},
		{Name: n.ClaimsTable(), Partitions: partitions, Configs: claims},
		{Name: n.StatsTable(), Partitions: partitions, Configs: compact},
		{Name: n.DeadLetter(), Partitions: 1},
		{Name: n.Customers(), Partitions: 1, Configs: compact},
		{Name: n.AccessKeys(), Partitions: 1, Configs: compact},
		{Name: n.Salts(), Partitions: 1, Configs: compact},
	}
}

// EnsureTopics creates the topics that do not exist yet, with replication
// factor -1 (the broker's default). Existing topics are left as they are.
func EnsureTopics(ctx context.Context, cl *kgo.Client, specs []TopicSpec) error {
	adm := kadm.NewClient(cl)
	for _, s := range specs {
		resp, err := adm.CreateTopic(ctx, s.Partitions, -1, s.Configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafkautil: creating topic %s: %w", s.Name, err)
		}
	}
	return nil
}
