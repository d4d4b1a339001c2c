// Package procmetrics holds the Prometheus metrics of the processors. A nil
// *Metrics is valid and records nothing, so each group can run without.
package procmetrics

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of one processors instance.
type Metrics struct {
	verdicts    *prometheus.CounterVec
	reemitted   prometheus.Counter
	deadLetters *prometheus.CounterVec
	applied     *prometheus.CounterVec
	age         prometheus.Histogram
}

// New registers the metrics with reg (nil: a nil *Metrics, recording
// nothing). Registering twice with the same registry returns the metrics
// already registered, so two pipelines in one process share them.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &Metrics{
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_processor_postbacks_total",
			Help: "Postbacks given a verdict and emitted to the events topics by this instance, by verdict and reason (re-emitted copies excluded).",
		}, []string{"verdict", "reason"}),
		reemitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamtools_processor_reemitted_events_total",
			Help: "Events emitted again after a restart or rebalance because their first emit may have been lost (readers drop them by seq).",
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_processor_dead_letters_total",
			Help: "Records sent to the dead-letter topic, by processor group.",
		}, []string{"processor"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_processor_stats_applied_total",
			Help: "Events applied to a stats table (result applied) or skipped as already applied (result replay), by group.",
		}, []string{"group", "result"}),
		age: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "streamtools_processor_verdict_lag_seconds",
			Help:    "Input lag in time: from the edge's receive time of a postback to its verdict emitted by anticheat.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}),
	}
	var errs []error
	m.verdicts = register(reg, m.verdicts, &errs)
	m.reemitted = register(reg, m.reemitted, &errs)
	m.deadLetters = register(reg, m.deadLetters, &errs)
	m.applied = register(reg, m.applied, &errs)
	m.age = register(reg, m.age, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("registering the processors' metrics: %w", err)
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	*errs = append(*errs, err)
	return c
}

// Verdict records a postback's first emit; receivedAt gives the lag.
func (m *Metrics) Verdict(verdict, reason string, receivedAt time.Time) {
	if m == nil {
		return
	}
	m.verdicts.WithLabelValues(verdict, reason).Inc()
	if !receivedAt.IsZero() {
		m.age.Observe(time.Since(receivedAt).Seconds())
	}
}

// Reemitted records an event emitted again.
func (m *Metrics) Reemitted() {
	if m != nil {
		m.reemitted.Inc()
	}
}

// DeadLetter records a record sent to the dead-letter topic by processor.
func (m *Metrics) DeadLetter(processor string) {
	if m != nil {
		m.deadLetters.WithLabelValues(processor).Inc()
	}
}

// Applied records a stats event applied (replay false) or skipped.
func (m *Metrics) Applied(group string, replay bool) {
	if m == nil {
		return
	}
	r := "applied"
	if replay {
		r = "replay"
	}
	m.applied.WithLabelValues(group, r).Inc()
}
