package sinks_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
)

// TestSinkLogsBrokerOutage closes the broker under a running sink: the
// outage is logged once (WARN) however long it lasts; a broker started
// again on the same address and data directory is logged once (INFO), and
// events reach Postgres again.
func TestSinkLogsBrokerOutage(t *testing.T) {
	dir := t.TempDir()
	e, b := newEnvOn(t, "", dir)
	var logs testrun.Buffer
	cfg := e.config()
	cfg.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e.startSink(cfg)
	e.fill(0, 10)
	e.waitFor("the first events", 10, "SELECT count(*) FROM events")

	const warning = `level=WARN msg="the Kafka brokers do not answer`
	b.Close()
	kafkatest.Eventually(t, 10*time.Second, "the outage logged", func() bool {
		return strings.Contains(logs.String(), warning)
	})
	time.Sleep(3 * time.Second) // a few more probes: still one line
	if n := strings.Count(logs.String(), "the Kafka brokers do not answer"); n != 1 {
		t.Errorf("%d outage warnings, want 1:\n%s", n, logs.String())
	}

	b2, err := broker.Start(broker.Config{Addr: e.addr, DataDir: dir})
	if err != nil {
		t.Fatalf("restarting the broker on %s: %v", e.addr, err)
	}
	t.Cleanup(b2.Close)
	kafkatest.Eventually(t, 30*time.Second, "the recovery logged", func() bool {
		return strings.Contains(logs.String(), `level=INFO msg="the Kafka brokers answer again"`)
	})
	e.fill(10, 20)
	e.waitFor("the events produced after the outage", 20, "SELECT count(*) FROM events")
	if n := strings.Count(logs.String(), "the Kafka brokers do not answer"); n != 1 {
		t.Errorf("%d outage warnings, want 1:\n%s", n, logs.String())
	}
}
