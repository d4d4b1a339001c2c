package kafkautil

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProbeEvery is how often a BrokerWatch asks the brokers whether they
// answer.
const ProbeEvery = time.Second

// BrokerWatch pings the Kafka brokers every ProbeEvery. Consumers and
// producers do not report an outage (they retry quietly), so without it a
// component would stall with nothing in its log and say it is ready. An
// outage is logged once when it starts (WARN, with DownMessage) and once
// when it ends (INFO), however long it lasts. The processors, the sink and
// widgetd each run one.
type BrokerWatch struct {
	Client *kgo.Client
	Log    *slog.Logger
	// DownMessage says what the outage means for this component.
	DownMessage string
	// OnProbe, when set, runs after every probe (e.g. to set a metric).
	OnProbe func(down bool)

	down atomic.Bool
}

// Down reports whether the last probe got no answer.
func (w *BrokerWatch) Down() bool { return w.down.Load() }

// Run probes until ctx is done.
func (w *BrokerWatch) Run(ctx context.Context) {
	tick := time.NewTicker(ProbeEvery)
	defer tick.Stop()
	var since time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*ProbeEvery)
		err := w.Client.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !w.down.Load():
			since = time.Now()
			w.down.Store(true)
			w.Log.Warn(w.DownMessage, "err", err)
		case err == nil && w.down.Load():
			w.down.Store(false)
			w.Log.Info("the Kafka brokers answer again", "outage", time.Since(since).Round(time.Millisecond))
		}
		if w.OnProbe != nil {
			w.OnProbe(w.down.Load())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
