package widgetd

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections       prometheus.Gauge
	messages          *prometheus.CounterVec // by type: snapshot, update, heartbeat
	rejected          *prometheus.CounterVec // by reason
	records           *prometheus.CounterVec // by table
	badRecords        prometheus.Counter
	pendingPartitions prometheus.Gauge
	ready             prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamtools_widgetd_connections", Help: "Open widget websockets."}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_widgetd_messages_sent_total", Help: "Websocket messages sent, by type (snapshot, update, heartbeat)."}, []string{"type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_widgetd_connections_rejected_total", Help: "Websocket upgrades refused, by reason (limit, not_found, bad_request, not_ready)."}, []string{"reason"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamtools_widgetd_changelog_records_total", Help: "Stats changelog records read, by table (stats: the day rows of the stats table)."}, []string{"table"}),
		badRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamtools_widgetd_changelog_bad_records_total", Help: "Stats changelog records skipped because they did not decode or have a newer schema version."}),
		pendingPartitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamtools_widgetd_catchup_pending_partitions", Help: "Changelog partitions not yet read up to their end offset as of start; 0 once caught up."}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamtools_widgetd_ready", Help: "1 once the tenant registry and the stats changelog are caught up."}),
	}
	for _, t := range []string{"snapshot", "update", "heartbeat"} {
		m.messages.WithLabelValues(t)
	}
	collectors := []prometheus.Collector{m.connections, m.messages, m.rejected, m.records, m.badRecords, m.pendingPartitions, m.ready}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			// A second server on the same registry (a restart inside one
			// process) keeps counting on the registered collectors.
			collectors[i] = are.ExistingCollector
		}
	}
	m.connections = collectors[0].(prometheus.Gauge)
	m.messages = collectors[1].(*prometheus.CounterVec)
	m.rejected = collectors[2].(*prometheus.CounterVec)
	m.records = collectors[3].(*prometheus.CounterVec)
	m.badRecords = collectors[4].(prometheus.Counter)
	m.pendingPartitions = collectors[5].(prometheus.Gauge)
	m.ready = collectors[6].(prometheus.Gauge)
	return m, nil
}
