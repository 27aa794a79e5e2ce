package bench

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Paced is an open-loop load: requests go out at a fixed rate whatever the server does, and each one's
// latency is counted from the time it was due to be sent, not from when a sender was free to send it.
// A closed-loop tool (wrk) waits for an answer before its next request, so a server that stalls for
// 100 ms is sent nothing in those 100 ms and the stall shows as one slow request instead of the 250
// it delayed (coordinated omission).
type Paced struct {
	Rate     float64       // requests a second
	Duration time.Duration // how long to send
	// Senders bounds the requests in flight; a request due while all are busy waits for one, and
	// the wait counts in its latency.
	Senders int
}

// Latencies are a paced run's results.
type Latencies struct {
	Sent, Errors   int64
	Elapsed        time.Duration
	P50, P99, P999 time.Duration
	Max            time.Duration
	// Late counts requests that left more than a millisecond after they were due: a sign that the
	// generator or the machine could not keep up, whatever the server did.
	Late int64
}

// RPS is the rate the run achieved.
func (l Latencies) RPS() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.Sent) / l.Elapsed.Seconds()
}

// Run sends p.Rate requests a second for p.Duration, the i-th by calling send(ctx, i), and returns
// their latencies. An error from send counts as an error; its latency counts too.
func (p Paced) Run(ctx context.Context, send func(ctx context.Context, i int64) error) Latencies {
	senders := max(p.Senders, 1)
	interval := time.Duration(float64(time.Second) / p.Rate)
	total := int64(p.Duration / interval)
	due := make(chan time.Time, max(min(total, 1<<16), 1))
	var errs, late atomic.Int64
	lat := make([][]time.Duration, senders)
	var wg sync.WaitGroup
	var next atomic.Int64
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for at := range due {
				i := next.Add(1) - 1
				if time.Since(at) > time.Millisecond {
					late.Add(1)
				}
				if err := send(ctx, i); err != nil {
					errs.Add(1)
				}
				lat[s] = append(lat[s], time.Since(at))
			}
		}()
	}
	start := time.Now()
	// Requests are due at start + i × interval; the scheduler sleeps until the next one is due and
	// then hands out every one that is, so that a late wake-up sends a burst rather than fewer.
	var i int64
	for i < total && ctx.Err() == nil {
		now := time.Now()
		for ; i < total; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.After(now) {
				break
			}
			due <- at
		}
		if i < total {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		}
	}
	close(due)
	wg.Wait()
	all := slices.Concat(lat...)
	slices.Sort(all)
	l := Latencies{Sent: int64(len(all)), Errors: errs.Load(), Late: late.Load(), Elapsed: time.Since(start)}
	if len(all) > 0 {
		l.P50, l.P99, l.P999, l.Max = quantile(all, 0.5), quantile(all, 0.99), quantile(all, 0.999), all[len(all)-1]
	}
	return l
}

// quantile is the q-quantile of sorted, by the nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Median is the median of xs (the lower of the middle two when their number is even): the figure a
// scenario reports over several runs.
func Median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
