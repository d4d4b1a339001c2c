package gokautil

import (
	"hash"
	"hash/crc32"
	"hash/fnv"
	"testing"
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
