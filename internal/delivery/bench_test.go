package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/delivery"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/webhook"
)

// rig is a service on a fresh store of one driver with a delivery Runner wired to it as serve wires
// them (the service kicks the runner after every commit that queued attempts), one workspace, and
// custom event types declared in the catalog. The runner starts with start, so that a test can queue
// a backlog first; it stops, and is waited for, when the test ends, before the store closes.
type rig struct {
	tb     testing.TB
	svc    *service.Service
	runner *delivery.Runner
	sys    *keyplane.Caller
	ws     string
	cancel context.CancelFunc
	done   chan struct{}
}

func newRig(tb testing.TB, driver string, o delivery.Options, eventTypes ...string) *rig {
	tb.Helper()
	st := storetest.Open(tb, driver)
	r := &rig{tb: tb, sys: keyplane.System("bench")}
	r.svc = servicetest.New(tb, st, service.Options{Catalog: servicetest.Catalog(tb, nil, eventTypes), Webhooks: service.WebhookOptions{
		Policy:   webhook.URLPolicy{AllowHTTP: true, AllowPrivate: true}, // httptest: http:// on loopback
		Schedule: []time.Duration{0},                                     // one attempt, due at once
		Kick:     func() { r.runner.Kick() },
		Guard:    kptest.Guard(tb),
	}})
	r.runner = delivery.New(r.svc, o)
	w, err := r.svc.CreateWorkspace(context.Background(), r.sys, service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		tb.Fatal(err)
	}
	r.ws = w.ID
	tb.Cleanup(r.stop)
	return r
}

// start runs the workers until the test ends.
func (r *rig) start() {
	if r.done != nil {
		r.tb.Fatal("rig: started twice")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { r.runner.Run(ctx); close(r.done) }()
}

func (r *rig) stop() {
	if r.done == nil {
		return
	}
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.tb.Error("rig: the runner did not stop within 30s of its context ending")
	}
}

// endpoint subscribes url to eventTypes and returns the endpoint's id.
func (r *rig) endpoint(url string, eventTypes ...string) string {
	r.tb.Helper()
	e, _, err := r.svc.CreateWebhook(context.Background(), r.sys, r.ws, service.WebhookInput{URL: url, EventTypes: eventTypes})
	if err != nil {
		r.tb.Fatal(err)
	}
	return e.ID
}

// send emits one custom event and returns it.
func (r *rig) send(eventType string, n int) (*keyplane.Event, error) {
	ev, queued, err := r.svc.SendEvent(context.Background(), r.sys, r.ws, eventType, json.RawMessage(`{"n":`+strconv.Itoa(n)+`}`))
	if err == nil && queued == 0 {
		err = fmt.Errorf("event %s was queued for no endpoint", ev.ID)
	}
	return ev, err
}

// arrivals is a receiver that answers 204 at once and records when each webhook-id first arrived.
type arrivals struct {
	mu   sync.Mutex
	at   map[string]time.Time
	wire int
	want int
	all  chan struct{} // closed once want distinct ids arrived
}

func newArrivals(tb testing.TB, want int) (*arrivals, *httptest.Server) {
	a := &arrivals{at: make(map[string]time.Time, want), want: want, all: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		// One arrival per event and endpoint: the endpoints of a rig differ by path.
		id := req.Header.Get("webhook-id") + req.URL.Path
		_, _ = io.Copy(io.Discard, req.Body)
		a.mu.Lock()
		a.wire++
		if _, seen := a.at[id]; !seen && id != "" {
			a.at[id] = now
			if len(a.at) == a.want {
				close(a.all)
			}
		}
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(srv.Close)
	return a, srv
}

func (a *arrivals) wait(tb testing.TB, d time.Duration) {
	tb.Helper()
	select {
	case <-a.all:
	case <-time.After(d):
		a.mu.Lock()
		defer a.mu.Unlock()
		tb.Fatalf("%d of %d events arrived within %s", len(a.at), a.want, d)
	}
}

// BenchmarkDelivery measures the webhook workers of one node against a local receiver that answers
// 204 at once, on each database, with the default Options (32 workers, 8 per endpoint). One op is one
// event delivered to one endpoint. The budget (DESIGN.md): at least 1,000 deliveries/s to a local
// receiver, and a p50 from event to delivery of at most 100 ms.
//
//   - backlog: b.N events are queued with the workers stopped; the timer runs from starting them to
//     the last arrival. deliveries/s is the rate at which a backlog drains to one endpoint, whose
//     bound (8 at once) is then the limit.
//   - backlog-4endpoints: the same with every event going to 4 endpoints (b.N deliveries in all), so
//     that all 32 workers are busy.
//   - stream: the workers run while 4 senders emit b.N events as fast as the store takes them
//     (SendEvent: one transaction each, as POST /v1/events does), so that the workers compete with
//     the writers, as in production. deliveries/s is b.N over the time from the first send to the
//     last arrival; p50-ms and p99-ms are from each event's timestamp (taken in its transaction,
//     before the commit) to its arrival. When the senders outrun the workers, the latency is
//     queueing and grows with b.N: compare it with deliveries/s. sent/s is the senders' rate, an
//     upper bound of deliveries/s here.
//   - paced: the same with one sender emitting 200 events a second (a fifth of the budget's rate),
//     so that the latency is the pipeline's own rather than a queue's.
func BenchmarkDelivery(b *testing.B) {
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			b.Run("backlog", func(b *testing.B) { benchBacklog(b, driver, 1) })
			b.Run("backlog-4endpoints", func(b *testing.B) { benchBacklog(b, driver, 4) })
			b.Run("stream", func(b *testing.B) { benchStream(b, driver, 4, 0) })
			b.Run("paced", func(b *testing.B) { benchStream(b, driver, 1, 200) })
		})
	}
}

// benchBacklog queues b.N deliveries, to endpoints endpoints (each event goes to every endpoint), and
// times their drain.
func benchBacklog(b *testing.B, driver string, endpoints int) {
	r := newRig(b, driver, delivery.Options{}, "order.created")
	n := (b.N + endpoints - 1) / endpoints // events
	a, srv := newArrivals(b, n*endpoints)
	for e := range endpoints {
		r.endpoint(srv.URL+"/hook/"+strconv.Itoa(e), "order.created")
	}
	for i := range n {
		if _, err := r.send("order.created", i); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	r.start()
	a.wait(b, 5*time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n*endpoints)/elapsed.Seconds(), "deliveries/s")
	a.mu.Lock()
	defer a.mu.Unlock()
	if extra := a.wire - n*endpoints; extra != 0 {
		b.ReportMetric(float64(extra)/float64(n*endpoints), "dup/op")
	}
}

// benchStream sends b.N events from senders goroutines, each at rate/senders events a second (0: as
// fast as the store takes them), with the workers running.
func benchStream(b *testing.B, driver string, senders int, rate float64) {
	r := newRig(b, driver, delivery.Options{}, "order.created")
	a, srv := newArrivals(b, b.N)
	const path = "/hook"
	r.endpoint(srv.URL+path, "order.created")
	r.start()
	sent := make([]map[string]time.Time, senders)
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for s := range senders {
		sent[s] = map[string]time.Time{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick *time.Ticker
			if rate > 0 {
				tick = time.NewTicker(time.Duration(float64(senders) / rate * float64(time.Second)))
				defer tick.Stop()
			}
			for i := s; i < b.N; i += senders {
				if tick != nil {
					<-tick.C
				}
				ev, err := r.send("order.created", i)
				if err != nil {
					errs <- err
					return
				}
				sent[s][ev.ID] = ev.CreatedAt
			}
		}()
	}
	wg.Wait()
	allSent := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	a.wait(b, 5*time.Minute)
	b.StopTimer()
	a.mu.Lock()
	defer a.mu.Unlock()
	var last time.Time
	lat := make([]time.Duration, 0, b.N)
	for _, m := range sent {
		for id, created := range m {
			at, ok := a.at[id+path]
			if !ok {
				b.Fatalf("event %s was not delivered", id)
			}
			lat = append(lat, at.Sub(created))
			if at.After(last) {
				last = at
			}
		}
	}
	if len(lat) != b.N {
		b.Fatalf("%d events sent, want %d", len(lat), b.N)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/last.Sub(start).Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/allSent.Seconds(), "sent/s")
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	if extra := a.wire - b.N; extra != 0 {
		b.ReportMetric(float64(extra)/float64(b.N), "dup/op")
	}
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
