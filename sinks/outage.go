package sinks

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// probeEvery is how often the sink asks the brokers whether they answer.
const probeEvery = time.Second

// watchBrokers pings the Kafka brokers every probeEvery until ctx is done.
// The consumer does not report an outage (franz-go retries the fetches
// quietly): without it the sink would just stop writing, with nothing in
// its log. An outage is logged once when it starts (WARN) and once when it
// ends (INFO), however long it lasts.
func watchBrokers(ctx context.Context, cl *kgo.Client, log *slog.Logger) {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	var down bool
	var since time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*probeEvery)
		err := cl.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !down:
			down, since = true, time.Now()
			log.Warn("the Kafka brokers do not answer: nothing reaches Postgres until they do", "err", err)
		case err == nil && down:
			down = false
			log.Info("the Kafka brokers answer again", "outage", time.Since(since).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
