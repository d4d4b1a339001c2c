package ingest

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's Prometheus metrics (listed in docs/edge.md, "Operations endpoints").
type metrics struct {
	requests *prometheus.CounterVec // by status code and endpoint
	records  *prometheus.CounterVec // postbacks (batch items included) by result
	produce  prometheus.Histogram   // produce-to-ack latency
	salts    prometheus.GaugeFunc

	// Children of requests by endpoint and status, cached: WithLabelValues
	// hashes its labels on every call.
	mu       sync.RWMutex
	children map[[2]string]prometheus.Counter // guarded by mu
	accepted prometheus.Counter
	post202  prometheus.Counter // the hot path's child, without the map
}

func newMetrics(reg prometheus.Registerer, saltDays func() float64) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamtools", Subsystem: "ingest", Name: "requests_total",
			Help: "HTTP requests answered by the edge, by endpoint (post, get, batch, other) and status code.",
		}, []string{"endpoint", "code"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamtools", Subsystem: "ingest", Name: "postbacks_total",
			Help: "Postbacks (batch items included) by result: accepted (acknowledged by Kafka), invalid, unavailable.",
		}, []string{"result"}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "streamtools", Subsystem: "ingest", Name: "produce_seconds",
			Help:    "Time from handing a request's records to the producer until Kafka acknowledged them (acks=all).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}),
		salts: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "streamtools", Subsystem: "ingest", Name: "salt_days",
			Help: "Days whose visitor-fingerprint salt this edge knows (normally 4: UTC yesterday to the day after tomorrow).",
		}, saltDays),
		children: map[[2]string]prometheus.Counter{},
	}
	for _, c := range []prometheus.Collector{m.requests, m.records, m.produce, m.salts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.accepted = m.records.WithLabelValues("accepted")
	m.post202 = m.requests.WithLabelValues("post", "202")
	return m, nil
}

func (m *metrics) request(endpoint string, code int) {
	if code == 202 && endpoint == "post" {
		m.post202.Inc()
		return
	}
	k := [2]string{endpoint, ""}
	k[1] = statusText(code)
	m.mu.RLock()
	c, ok := m.children[k]
	m.mu.RUnlock()
	if !ok {
		c = m.requests.WithLabelValues(k[0], k[1])
		m.mu.Lock()
		m.children[k] = c
		m.mu.Unlock()
	}
	c.Inc()
}

var codeText = func() map[int]string {
	m := map[int]string{}
	for _, c := range []int{200, 202, 207, 400, 401, 404, 405, 413, 415, 429, 500, 503} {
		m[c] = strconv.Itoa(c)
	}
	return m
}()

func statusText(code int) string {
	if s, ok := codeText[code]; ok {
		return s
	}
	return strconv.Itoa(code)
}
