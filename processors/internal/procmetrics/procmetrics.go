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
	deadLetters *prometheus.CounterVec
	applied     *prometheus.CounterVec
	age         prometheus.Histogram
	ready       prometheus.Gauge
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
			Help: "Events emitted with their verdict by this instance, by verdict and reason (copies emitted again after a restart included; the stats processor applies each once).",
		}, []string{"verdict", "reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_processor_dead_letters_total",
			Help: "Records sent to the dead-letter topic, by processor group.",
		}, []string{"processor"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_processor_applied_total",
			Help: "Inputs applied to a table row (result applied) or skipped as applied already (result replay: a copy or a redelivery after a restart), by group.",
		}, []string{"group", "result"}),
		age: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "streamtools_processor_verdict_lag_seconds",
			Help:    "Input lag in time: from the edge's receive time of a postback to its verdict emitted by the verdicts processor.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamtools_processor_ready",
			Help: "1 while every processor group of this instance recovered its table and consumes; 0 during start-up and broker outages.",
		}),
	}
	var errs []error
	m.verdicts = register(reg, m.verdicts, &errs)
	m.deadLetters = register(reg, m.deadLetters, &errs)
	m.applied = register(reg, m.applied, &errs)
	m.age = register(reg, m.age, &errs)
	m.ready = register(reg, m.ready, &errs)
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

// DeadLetter records a record sent to the dead-letter topic by processor.
func (m *Metrics) DeadLetter(processor string) {
	if m != nil {
		m.deadLetters.WithLabelValues(processor).Inc()
	}
}

// Applied records an input applied to a row (replay false) or skipped.
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

// Ready records whether the instance is ready.
func (m *Metrics) Ready(ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.ready.Set(v)
}
