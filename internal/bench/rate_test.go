package bench

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestPacedCountsFromTheSchedule: a server that stalls delays every request due during the stall, and
// the paced run counts each one's wait, as a closed-loop tool would not. With one sender stuck 300 ms
// on the first request, the ten requests due in the first 100 ms wait at least 200 ms each, so the
// p99 is at least that (a closed loop would see one slow request, below its p99): only lower bounds,
// which a slow machine cannot break.
func TestPacedCountsFromTheSchedule(t *testing.T) {
	var calls atomic.Int64
	l := Paced{Rate: 100, Duration: time.Second, Senders: 1}.Run(context.Background(), func(ctx context.Context, i int64) error {
		calls.Add(1)
		if i == 0 {
			time.Sleep(300 * time.Millisecond)
		}
		if i == 7 {
			return errors.New("refused")
		}
		return nil
	})
	if l.Sent != 100 || calls.Load() != 100 {
		t.Errorf("sent %d (%d calls), want 100", l.Sent, calls.Load())
	}
	if l.Errors != 1 {
		t.Errorf("%d errors, want 1", l.Errors)
	}
	if l.P99 < 200*time.Millisecond || l.Max < 300*time.Millisecond || l.Late < 25 {
		t.Errorf("p99 %s, max %s, %d late: the stall's wait is not counted", l.P50, l.Max, l.Late)
	}
	if !(l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("quantiles out of order: %+v", l)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2}} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
