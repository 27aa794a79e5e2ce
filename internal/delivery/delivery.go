// Package delivery runs the webhook workers of one node: it leases due attempts from the store, makes
// them with bounded concurrency, per endpoint as well as in all, and records each through the service,
// which owns the rules (signing, retries, disabling). Any number of nodes may run workers on one
// PostgreSQL database: leases keep them from making the same attempt twice while it is under way.
package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// Options tune the workers; zero fields take the defaults.
type Options struct {
	// Workers is how many attempts this node makes at once. Default 32. It holds at most twice as
	// many: the others wait behind their endpoint's bound, and one whose lease would lapse before
	// it could finish is left to be leased again rather than made late.
	Workers int
	// PerEndpoint bounds the attempts to one endpoint at once, so that a slow endpoint holds at most
	// that many workers and the others keep flowing. Default 8.
	PerEndpoint int
	// Poll is how often the store is asked for due attempts when nothing kicked the workers: the
	// bound on how late a retry, or an event written by another node, is taken. Default 1 s.
	Poll   time.Duration
	Logger *slog.Logger
}

// Runner leases and makes attempts until its context ends.
type Runner struct {
	svc  *service.Service
	o    Options
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	running int // attempts being made
	held    int // attempts leased and not done: running, or queued behind their endpoint's bound
	perEP   map[string]*endpointState
}

// endpointState is one endpoint's attempts on this node.
type endpointState struct {
	running int
	waiting []leased
}

// New returns a Runner for svc.
func New(svc *service.Service, o Options) *Runner {
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = 8
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{svc: svc, o: o, log: o.Logger, kick: make(chan struct{}, 1), perEP: map[string]*endpointState{}}
}

// Kick tells the runner that attempts are due now. It never blocks.
func (r *Runner) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run leases and makes attempts until ctx ends, then waits for those under way. Attempts cut short
// by the end keep their lease and are made again by a node once it lapses: delivery is at least
// once, and receivers dedupe by webhook-id.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}, r.o.Workers) // an attempt finished: room to lease more
	tick := time.NewTicker(r.o.Poll)
	defer tick.Stop()
	for {
		r.fill(ctx, &wg, done)
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-tick.C:
		case <-done:
		}
	}
}

// leased is an attempt, the claim it was leased under, and when that lease lapses.
type leased struct {
	d     keyplane.Delivery
	claim string
	until time.Time
}

// startMargin: an attempt is started only while its lease outlasts the attempt's timeout by this
// much; one that waited longer behind its endpoint is left for its lease to lapse and to be leased
// again, so that no two nodes ever make it at once.
const startMargin = 2 * time.Second

// fill leases as many due attempts as there are idle workers, leaving out endpoints at their bound,
// and starts them; it repeats while full pages come back. Attempts queued behind a busy endpoint do
// not take a worker, so a slow endpoint cannot hold up the others; the queue is bounded by Workers
// more attempts held.
func (r *Runner) fill(ctx context.Context, wg *sync.WaitGroup, done chan<- struct{}) {
	for ctx.Err() == nil {
		r.mu.Lock()
		free := min(r.o.Workers-r.running, 2*r.o.Workers-r.held)
		var busy []string
		for ep, st := range r.perEP {
			if st.running >= r.o.PerEndpoint {
				busy = append(busy, ep)
			}
		}
		r.mu.Unlock()
		if free <= 0 {
			return
		}
		ds, claim, until, err := r.svc.ClaimDeliveries(ctx, free, busy)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("webhooks: lease attempts", "err", err)
			}
			return
		}
		for _, d := range ds {
			r.start(ctx, wg, done, leased{d, claim, until})
		}
		if len(ds) < free {
			return
		}
	}
}

// start makes the attempt now, or, when its endpoint is at its bound, queues it behind the endpoint's
// running attempts.
func (r *Runner) start(ctx context.Context, wg *sync.WaitGroup, done chan<- struct{}, l leased) {
	r.mu.Lock()
	st := r.perEP[l.d.EndpointID]
	if st == nil {
		st = &endpointState{}
		r.perEP[l.d.EndpointID] = st
	}
	r.held++
	if st.running >= r.o.PerEndpoint {
		st.waiting = append(st.waiting, l)
		r.mu.Unlock()
		return
	}
	st.running++
	r.running++
	r.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if time.Until(l.until) < keyplane.WebhookTimeout+startMargin {
				r.log.Debug("webhooks: an attempt waited past its lease; it will be leased again", "delivery", l.d.ID)
			} else if err := r.svc.Deliver(ctx, l.d, l.claim); err != nil && ctx.Err() == nil {
				r.log.Error("webhooks: attempt", "delivery", l.d.ID, "endpoint", l.d.EndpointID, "err", err)
			}
			r.mu.Lock()
			r.held--
			if len(st.waiting) > 0 && ctx.Err() == nil {
				l, st.waiting = st.waiting[0], st.waiting[1:]
				r.mu.Unlock()
				continue
			}
			st.running--
			r.running--
			if st.running == 0 && len(st.waiting) == 0 {
				delete(r.perEP, l.d.EndpointID)
			}
			r.mu.Unlock()
			select {
			case done <- struct{}{}:
			default:
			}
			return
		}
	}()
}
