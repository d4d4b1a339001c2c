package sinks

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lag         *prometheus.GaugeVec
	rows        *prometheus.CounterVec
	batches     prometheus.Counter
	batchTime   prometheus.Histogram
	retries     *prometheus.CounterVec
	deadLetters prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamtools_sink_lag_records",
			Help: "Records in the topic not yet written to Postgres (high watermark minus next offset, summed over partitions), as of the last batch.",
		}, []string{"topic"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_sink_rows_total",
			Help: "Rows the sink wrote, by table and change (inserted, updated, unchanged, deleted).",
		}, []string{"table", "change"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamtools_sink_batches_total",
			Help: "Transactions the sink committed.",
		}),
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "streamtools_sink_batch_seconds",
			Help:    "Time to write one batch, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_sink_retries_total",
			Help: "Failed attempts that the sink retried (Postgres or Kafka unavailable), by operation.",
		}, []string{"operation"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamtools_sink_dead_letters_total",
			Help: "Records the sink could not write and sent to the dead-letter topic.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lag, m.rows, m.batches, m.batchTime, m.retries, m.deadLetters} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("sinks: registering metrics: %w (one sink per Registerer)", err)
			}
			return nil, fmt.Errorf("sinks: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(s Summary, took time.Duration) {
	m.batches.Inc()
	m.batchTime.Observe(took.Seconds())
	for table, c := range map[string]Changes{"events": s.Events, "daily_stats": s.DailyStats} {
		m.rows.WithLabelValues(table, "inserted").Add(float64(c.Inserted))
		m.rows.WithLabelValues(table, "updated").Add(float64(c.Updated))
		m.rows.WithLabelValues(table, "unchanged").Add(float64(c.Unchanged))
		m.rows.WithLabelValues(table, "deleted").Add(float64(c.Deleted))
	}
}
