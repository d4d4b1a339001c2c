package widgetd

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// probeEvery is how often widgetd asks the brokers whether they answer.
const probeEvery = time.Second

// brokerWatch pings the Kafka brokers every probeEvery. A consumer does
// not report an outage (franz-go retries the fetches quietly), so without
// it widgetd would serve frozen totals and say it is ready. While no broker
// answers, /readyz answers 503; the outage is logged once when it starts
// (WARN) and once when it ends (INFO), however long it lasts.
type brokerWatch struct {
	cl   *kgo.Client
	log  *slog.Logger
	down atomic.Bool
}

// run probes until ctx is done.
func (w *brokerWatch) run(ctx context.Context) {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	var since time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*probeEvery)
		err := w.cl.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !w.down.Load():
			since = time.Now()
			w.down.Store(true)
			w.log.Warn("the Kafka brokers do not answer: widgets keep their last totals, /readyz answers 503 until they do", "err", err)
		case err == nil && w.down.Load():
			w.down.Store(false)
			w.log.Info("the Kafka brokers answer again", "outage", time.Since(since).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
