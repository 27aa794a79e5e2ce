// Package metrics exposes keyplane's Prometheus metrics at /metrics: verifications by code and
// source, verification latency, HTTP requests by route and status, and gauges and counters read from
// the parts that keep their own counts (the verification cache, the request log). Every name is
// prefixed keyplane_. The registry is this process's own: nothing registers globally.
package metrics

import (
	"crypto/subtle"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the registry and the metrics other packages record into.
type Metrics struct {
	reg           *prometheus.Registry
	verifications *prometheus.CounterVec
	verifyLatency *prometheus.HistogramVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	deliveries    *prometheus.CounterVec
	// verified holds the series of each code and source met so far, so that a verification does
	// not hash its labels and take the vectors' locks: a map replaced, never changed, on the rare
	// first meeting of a pair.
	verified atomic.Pointer[map[verificationLabels]verificationSeries]
	mu       sync.Mutex // serializes replacing verified
}

type verificationLabels struct{ code, source string }

type verificationSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// New returns metrics with the Go runtime and process collectors registered.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.verified.Store(&map[verificationLabels]verificationSeries{})
	m.verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyplane_verifications_total", Help: "Verifications answered, by outcome code and source.",
	}, []string{"code", "source"})
	m.verifyLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "keyplane_verification_duration_seconds", Help: "Time to decide a verification, from request to answer.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	}, []string{"source"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyplane_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status.",
	}, []string{"route", "method", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "keyplane_http_request_duration_seconds", Help: "HTTP request duration by route pattern.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyplane_webhook_deliveries_total", Help: "Webhook delivery attempts, by outcome.",
	}, []string{"outcome"})
	m.reg.MustRegister(m.verifications, m.verifyLatency, m.httpRequests, m.httpDuration, m.deliveries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Verification records one verification's outcome and how long it took.
func (m *Metrics) Verification(code, source string, d time.Duration) {
	k := verificationLabels{code, source}
	s, ok := (*m.verified.Load())[k]
	if !ok {
		s = m.verificationSeries(k)
	}
	s.count.Inc()
	s.latency.Observe(d.Seconds())
}

// verificationSeries adds the series of k to verified. Codes and sources are a few constants each,
// so the map stays small.
func (m *Metrics) verificationSeries(k verificationLabels) verificationSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.verified.Load()
	if s, ok := old[k]; ok {
		return s
	}
	s := verificationSeries{count: m.verifications.WithLabelValues(k.code, k.source), latency: m.verifyLatency.WithLabelValues(k.source)}
	next := make(map[verificationLabels]verificationSeries, len(old)+1)
	maps.Copy(next, old)
	next[k] = s
	m.verified.Store(&next)
	return s
}

// Delivery records one webhook delivery attempt.
func (m *Metrics) Delivery(outcome string) { m.deliveries.WithLabelValues(outcome).Inc() }

// GaugeFunc exports a value read when scraped (a queue depth, a cache size).
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc exports a monotonic count kept elsewhere (cache hits, dropped log entries).
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// Handler serves the metrics; with a token, only to requests that bear it.
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "send the metrics token as Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Middleware counts requests by the pattern of the route that served them (so that ids in paths do
// not become label values), method and status.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern // set by the innermost ServeMux that matched, on this very request
		if route == "" || route == "/" {
			route = "unmatched"
		}
		m.httpRequests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
		m.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
