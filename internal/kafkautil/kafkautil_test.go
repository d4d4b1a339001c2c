package kafkautil

import (
	"hash/fnv"
	"testing"
)

func TestFNV1a32MatchesHashFNV(t *testing.T) {
	for _, key := range []string{"", "a", "default/product/influ_test", "acme/shoes/j%C3%BCrgen", "\x00\xff"} {
		h := fnv.New32a()
		h.Write([]byte(key))
		if got, want := fnv1a32([]byte(key)), h.Sum32(); got != want {
			t.Errorf("fnv1a32(%q) = %d, want %d (hash/fnv)", key, got, want)
		}
	}
}

func TestPartitionForIsSaramas(t *testing.T) {
	// sarama: partition = int32(fnv1a32(key)) % n, negated when negative.
	for _, key := range []string{"default/product/influ_test", "x", "acme/shoes/bob"} {
		h := fnv.New32a()
		h.Write([]byte(key))
		want := int32(h.Sum32()) % 6
		if want < 0 {
			want = -want
		}
		if got := PartitionFor([]byte(key), 6); got != want {
			t.Errorf("PartitionFor(%q) = %d, want %d", key, got, want)
		}
	}
}
