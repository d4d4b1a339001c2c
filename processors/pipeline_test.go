package processors_test

import (
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/kafkatest"
)

func TestCountsMatchReference(t *testing.T) {
	b := kafkatest.Start(t, "")
	n := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, b.Addr(), n, testPartitions)
	cl := kafkatest.Client(t, b.Addr())
	pbs := gen(1, 400, time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC), 37*time.Second)
	produce(t, cl, n, pbs)
	startPipeline(t, b.Addr(), n, t.TempDir())
	waitTables(t, b.Addr(), n, reference(pbs, 7*24*time.Hour), 60*time.Second)
}
