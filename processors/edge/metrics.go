package edge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the REST edge's Prometheus metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	records  prometheus.Counter
	latency  *prometheus.HistogramVec
	shed     prometheus.Counter
}

// NewMetrics registers the edge's metrics with reg (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minipipe_rest_requests_total", Help: "REST Proxy requests by endpoint and HTTP status.",
		}, []string{"endpoint", "status"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "minipipe_rest_records_total", Help: "Records accepted by the REST Proxy and acknowledged by Kafka.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "minipipe_rest_request_duration_seconds", Help: "REST Proxy request latency, from request to response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"endpoint"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "minipipe_rest_shed_requests_total", Help: "Produce requests refused with 429 because the in-flight budget (--max-inflight-bytes) was spent.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.records, m.latency, m.shed)
	}
	return m
}

func (m *Metrics) observe(endpoint string, status, records int, start time.Time) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	if records > 0 {
		m.records.Add(float64(records))
	}
	m.latency.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
}
