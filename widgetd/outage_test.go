package widgetd

import (
	"github.com/streamtools/streamtools/internal/kafkautil"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/testrun"
)

// TestBrokerOutage closes the broker under a ready widgetd: /readyz
// answers 503 within a few seconds and the outage is logged once (WARN),
// however long it lasts. A broker started again on the same address and
// data directory brings /readyz back to 200 (logged once, INFO), and new
// counts reach the widgets again.
func TestBrokerOutage(t *testing.T) {
	sys := newSystem(t, t.TempDir())
	sys.putCustomer(demoCustomer("default"))
	k := row("default", "product", "influ_test", "", day1)
	sys.putDay(k, map[string]int64{"reg": 3}, 0)
	var logs testrun.Buffer
	srv, _ := sys.startServer("127.0.0.1:0", func(c *Config) {
		c.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	base := "http://" + srv.Addr()
	readyz := func() (int, string) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if code, _ := readyz(); code != 200 {
		t.Fatalf("/readyz %d before the outage", code)
	}
	warnings := func() int { return strings.Count(logs.String(), "the Kafka brokers do not answer") }

	addr, dir := sys.b.Addr(), sys.dataDir
	sys.b.Close()
	down := time.Now()
	kafkatest.Eventually(t, 10*time.Second, "/readyz 503 with the broker down", func() bool {
		code, retry := readyz()
		return code == 503 && retry != ""
	})
	t.Logf("/readyz answered 503 %v after the broker closed", time.Since(down).Round(time.Millisecond))
	// Let the outage last a few probes: still one warning.
	time.Sleep(3 * kafkautil.ProbeEvery)
	if code, _ := readyz(); code != 503 {
		t.Errorf("/readyz %d during the outage", code)
	}
	if n := warnings(); n != 1 || !strings.Contains(logs.String(), "level=WARN msg=\"the Kafka brokers do not answer") {
		t.Errorf("%d outage warnings, want 1 (WARN):\n%s", n, logs.String())
	}
	// The widget still answers its last totals.
	if code, body := getJSON(t, base+"/ws/default/product/influ_test", ""); code != 200 || body["total"] != float64(3) {
		t.Errorf("snapshot during the outage: %d %v, want 200 with total 3", code, body)
	}

	b2, err := broker.Start(broker.Config{Addr: addr, DataDir: dir})
	if err != nil {
		t.Fatalf("restarting the broker on %s: %v", addr, err)
	}
	t.Cleanup(b2.Close)
	back := time.Now()
	kafkatest.Eventually(t, 30*time.Second, "/readyz 200 once the broker is back", func() bool {
		code, _ := readyz()
		return code == 200
	})
	t.Logf("/readyz answered 200 %v after the broker came back", time.Since(back).Round(time.Millisecond))
	if !strings.Contains(logs.String(), "the Kafka brokers answer again") || warnings() != 1 {
		t.Errorf("want one warning and one recovery line:\n%s", logs.String())
	}
	sys.putDay(k, map[string]int64{"reg": 5}, 0)
	kafkatest.Eventually(t, 20*time.Second, "the new count in the snapshot", func() bool {
		_, body := getJSON(t, base+"/ws/default/product/influ_test", "")
		return body["total"] == float64(5)
	})
}
