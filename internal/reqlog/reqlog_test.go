package reqlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testkit"
)

// recorder is a Writer that keeps copies of what it was given. When block is set, every write first
// says it started on entered, then waits until block is closed.
type recorder struct {
	mu      sync.Mutex
	batches [][]keyplane.RequestLog
	touches []map[string]time.Time // of each AddUsage taken
	counts  [][]store.UsageCount   // of each AddUsage taken
	tries   int                    // AddUsage calls, refused ones included
	fail    int                    // fail this many writes first
	refuse  bool                   // AddUsage fails while set
	block   chan struct{}
	entered chan int
}

func (r *recorder) WriteRequestLogs(ctx context.Context, entries []keyplane.RequestLog) error {
	if r.block != nil {
		r.entered <- len(entries)
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("store down")
	}
	r.batches = append(r.batches, slices.Clone(entries))
	return nil
}

func (r *recorder) AddUsage(ctx context.Context, counts []store.UsageCount, touched map[string]time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if r.refuse {
		return errors.New("store down")
	}
	r.touches = append(r.touches, maps.Clone(touched))
	r.counts = append(r.counts, slices.Clone(counts))
	return nil
}

func (r *recorder) setRefuse(v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuse = v
}

func (r *recorder) usageWrites() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

// counted sums every count taken, per key and code.
func (r *recorder) counted() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for _, cs := range r.counts {
		for _, c := range cs {
			out[c.KeyID+" "+c.Hour.Format(time.RFC3339)+" "+string(c.Code)] += c.Requests
		}
	}
	return out
}

// logged counts the entries written, as counted sums them.
func (r *recorder) logged() map[string]int64 {
	out := map[string]int64{}
	for _, e := range r.all() {
		out[e.KeyID+" "+e.Timestamp.UTC().Truncate(time.Hour).Format(time.RFC3339)+" "+string(e.Code)]++
	}
	return out
}

func (r *recorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, len(r.batches))
	for i, b := range r.batches {
		out[i] = len(b)
	}
	return out
}

func (r *recorder) all() []keyplane.RequestLog {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Concat(r.batches...)
}

func closeLogger(t *testing.T, l *Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

var t0 = time.Date(2030, 1, 31, 12, 0, 0, 0, time.UTC)

func entry(key string, ts time.Time) keyplane.RequestLog {
	return keyplane.RequestLog{WorkspaceID: "ws_1", KeyID: key, Code: keyplane.VerifyValid, Source: keyplane.SourceVerify,
		Method: "POST", Path: "/v1/verify", IP: "203.0.113.9", UserAgent: "test", LatencyMicros: 42, Timestamp: ts}
}

// never is a flush interval that does not come during a test.
const never = time.Hour

func TestCloseFlushes(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: never, BatchSize: 1000, Shards: 1})
	var want []keyplane.RequestLog
	for i := range 7 {
		// Nanoseconds and another zone: the store keeps microseconds, in UTC.
		ts := t0.Add(time.Duration(i)*time.Second + 1234567*time.Nanosecond).In(time.FixedZone("X", 3600))
		e := entry(fmt.Sprintf("apk_%d", i), ts)
		l.Log(e)
		e.Timestamp = ts.UTC().Truncate(time.Microsecond)
		want = append(want, e)
	}
	if got := rec.sizes(); len(got) != 0 {
		t.Fatalf("written before a batch filled or the interval passed: %v", got)
	}
	closeLogger(t, l)
	if got := rec.sizes(); !slices.Equal(got, []int{7}) {
		t.Fatalf("batches on close: %v, want [7]", got)
	}
	got := rec.all()
	for i := range got {
		ts := want[i].Timestamp
		if !id.Valid(id.Request, got[i].ID) || got[i].ID < id.Floor(id.Request, ts) || got[i].ID >= id.Floor(id.Request, ts.Add(time.Millisecond)) {
			t.Errorf("entry %d: id %q is not a req_ id of its time", i, got[i].ID)
		}
		want[i].ID = got[i].ID
		if !reflect.DeepEqual(got[i], want[i]) { // entries hold Tags, a slice
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// Closed: nothing more is taken, and that is counted.
	l.Log(entry("apk_late", t0))
	if l.Dropped() != 1 || len(rec.all()) != 7 {
		t.Errorf("after Close: dropped %d, written %d; want 1 and 7", l.Dropped(), len(rec.all()))
	}
	closeLogger(t, l) // again: fine
}

// TestIDsFollowTime: the log is listed by id, so ids must sort as the entries' times do, within a
// millisecond too, whatever shard each entry went through.
func TestIDsFollowTime(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: never, BatchSize: 1000, Shards: 8})
	var times []time.Time
	for i := range 300 {
		// 300 entries over 3 milliseconds, several per microsecond, logged out of order.
		times = append(times, t0.Add(time.Duration(i%3)*time.Millisecond+time.Duration(i%7)*time.Microsecond))
	}
	for _, ts := range times {
		l.Log(entry("apk_1", ts))
	}
	closeLogger(t, l)
	got := rec.all()
	if len(got) != len(times) {
		t.Fatalf("%d entries written, want %d", len(got), len(times))
	}
	slices.SortFunc(got, func(a, b keyplane.RequestLog) int { return strings.Compare(a.ID, b.ID) })
	for i := 1; i < len(got); i++ {
		if got[i].ID == got[i-1].ID {
			t.Fatalf("two entries have the id %s", got[i].ID)
		}
		if got[i].Timestamp.Before(got[i-1].Timestamp) {
			t.Fatalf("id order is not time order: %s at %v sorts after %s at %v", got[i].ID, got[i].Timestamp, got[i-1].ID, got[i-1].Timestamp)
		}
	}
}

// TestIDsFollowTimeAcrossBatches: entries of one millisecond written in batches of their own still
// get ids in their time order (the log page lists by id: two verifications of one millisecond on
// either side of a flush came out swapped).
func TestIDsFollowTimeAcrossBatches(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: never, BatchSize: 1, Shards: 1})
	for i := range 50 {
		l.Log(entry("apk_1", t0.Add(time.Duration(i)*10*time.Microsecond)))
	}
	closeLogger(t, l)
	got := rec.all()
	if len(got) != 50 || len(rec.sizes()) != 50 {
		t.Fatalf("%d entries in %d batches, want 50 in 50", len(got), len(rec.sizes()))
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID <= got[i-1].ID {
			t.Fatalf("entry %d at %v has id %s, not after %s of the one before at %v", i, got[i].Timestamp, got[i].ID, got[i-1].ID, got[i-1].Timestamp)
		}
	}
}

func TestIncrement(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte{0, 0, 1}, []byte{0, 0, 2}},
		{[]byte{0, 1, 0xff}, []byte{0, 2, 0}},
		{[]byte{0xff, 0xff, 0xff}, []byte{0, 0, 0}},
	} {
		b := slices.Clone(c.in)
		if increment(b); !slices.Equal(b, c.want) {
			t.Errorf("increment(%x) = %x, want %x", c.in, b, c.want)
		}
	}
}

func TestBatchesBySize(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: never, BatchSize: 3, Shards: 1})
	for i := range 7 {
		l.Log(entry("apk_1", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	// A full batch is written without waiting for the interval (which never comes here).
	testkit.Eventually(t, 5*time.Second, "a full batch", func() bool { return len(rec.sizes()) > 0 })
	if got := rec.sizes(); got[0] != 3 {
		t.Fatalf("first batch of %d entries, want 3", got[0])
	}
	closeLogger(t, l)
	sizes, total := rec.sizes(), 0
	for _, n := range sizes {
		if n > 3 {
			t.Errorf("a batch of %d entries, more than the batch size", n)
		}
		total += n
	}
	if total != 7 {
		t.Fatalf("batches %v hold %d entries, want 7", sizes, total)
	}
}

func TestBatchesByTime(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: 20 * time.Millisecond, BatchSize: 1000, Shards: 1})
	defer closeLogger(t, l)
	l.Log(entry("apk_1", t0))
	l.Log(entry("apk_2", t0))
	testkit.Eventually(t, 5*time.Second, "the interval's batch", func() bool { return len(rec.sizes()) == 1 })
	if got := rec.sizes(); !slices.Equal(got, []int{2}) {
		t.Fatalf("batches %v, want [2]", got)
	}
}

// TestFullBufferDrops fills the buffer while the store is stuck: Log must return at once and count
// what it could not keep, and what it kept is written once the store answers again.
func TestFullBufferDrops(t *testing.T) {
	rec := &recorder{block: make(chan struct{}), entered: make(chan int, 10)}
	l := New(rec, Options{FlushInterval: never, BatchSize: 1, BufferSize: 4, Shards: 1})
	l.Log(entry("apk_1", t0))
	<-rec.entered // the flusher holds that entry, stuck in the store

	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for i := range 14 {
			l.Log(entry("apk_1", t0.Add(time.Duration(i+1)*time.Millisecond)))
		}
	}()
	select {
	case <-logged:
	case <-time.After(5 * time.Second):
		t.Fatal("Log blocked on a full buffer")
	}
	if d := l.Dropped(); d != 10 {
		t.Fatalf("Dropped() = %d, want 10 (4 of 14 fit the buffer)", d)
	}
	close(rec.block) // entered has room for the writes still to come
	closeLogger(t, l)
	if n := len(rec.all()); n != 5 {
		t.Fatalf("written %d entries, want the 5 that were taken", n)
	}
	if d := l.Dropped(); d != 10 {
		t.Errorf("Dropped() = %d after the store recovered, want still 10", d)
	}
}

// TestCloseGivesUp: Close returns when its context ends, even if the store never answers.
func TestCloseGivesUp(t *testing.T) {
	rec := &recorder{block: make(chan struct{}), entered: make(chan int, 1)}
	defer close(rec.block)
	l := New(rec, Options{FlushInterval: never})
	l.Log(entry("apk_1", t0))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a stuck store = %v, want a deadline error", err)
	}
}

func TestFailedBatchIsCountedAndTheNextWritten(t *testing.T) {
	rec := &recorder{fail: 1}
	l := New(rec, Options{FlushInterval: never, BatchSize: 2, Shards: 1})
	for i := range 4 {
		l.Log(entry("apk_1", t0.Add(time.Duration(i)*time.Second)))
	}
	closeLogger(t, l)
	if l.Failed() != 2 || !slices.Equal(rec.sizes(), []int{2}) {
		t.Fatalf("Failed() = %d, batches %v; want 2 and [2]", l.Failed(), rec.sizes())
	}
	// The failed batch is in no count: the counts are the written batch's.
	if got, want := rec.counted(), rec.logged(); !maps.Equal(got, want) || len(want) != 1 || want[keyHourCode("apk_1", t0, keyplane.VerifyValid)] != 2 {
		t.Errorf("counted %v, want the written entries' %v", got, want)
	}
	// The failed batch touched nothing, so the next one touches the key.
	if got := rec.touches[0]; !maps.Equal(got, map[string]time.Time{"apk_1": t0.Add(3 * time.Second)}) {
		t.Errorf("touches after a failed batch: %v", got)
	}
}

// clock is a fake clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestLastUsedAtOncePerMinute: a key's last-used time is written with the first usage write after a
// batch that has the key, then not again until a minute after the time written.
func TestLastUsedAtOncePerMinute(t *testing.T) {
	clk := &clock{}
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: never, UsageInterval: never, BatchSize: 1, Shards: 1, Now: clk.Now})
	steps := []struct {
		key string
		at  time.Duration
	}{
		{"apk_a", 0}, {"apk_b", 30 * time.Second}, {"apk_a", 30 * time.Second}, {"apk_a", 59*time.Second + 999*time.Millisecond},
		{"apk_a", time.Minute}, {"apk_b", 80 * time.Second}, {"apk_a", 61 * time.Second}, {"apk_b", 90 * time.Second},
	}
	for _, s := range steps {
		clk.Set(t0.Add(s.at))
		l.Log(keyplane.RequestLog{KeyID: s.key, WorkspaceID: "ws_1", Code: keyplane.VerifyValid, Source: keyplane.SourceVerify}) // no time: the clock's
		waitCounted(t, l, 1)
		if err := l.syncUsage(); err != nil {
			t.Fatal(err)
		}
	}
	closeLogger(t, l)
	want := []map[string]time.Time{
		{"apk_a": t0}, {"apk_b": t0.Add(30 * time.Second)}, {}, {},
		{"apk_a": t0.Add(time.Minute)}, {}, {}, {"apk_b": t0.Add(90 * time.Second)},
	}
	if len(rec.touches) != len(want) {
		t.Fatalf("%d usage writes, want %d", len(rec.touches), len(want))
	}
	for i := range want {
		if !maps.Equal(rec.touches[i], want[i]) {
			t.Errorf("usage write %d (%s at +%s) touched %v, want %v", i, steps[i].key, steps[i].at, rec.touches[i], want[i])
		}
	}
	for i, e := range rec.all() {
		if !e.Timestamp.Equal(t0.Add(steps[i].at)) {
			t.Errorf("entry %d stamped %v, want the clock's %v", i, e.Timestamp, t0.Add(steps[i].at))
		}
	}
}

// TestLastUsedAtWithinABatch: one write per key per usage write, with the key's latest time in it.
func TestLastUsedAtWithinABatch(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: never, BatchSize: 4, Shards: 1})
	l.Log(entry("apk_a", t0.Add(2*time.Minute)))
	l.Log(entry("apk_b", t0))
	l.Log(entry("apk_a", t0.Add(3*time.Minute)))
	l.Log(entry("apk_a", t0))
	closeLogger(t, l)
	want := map[string]time.Time{"apk_a": t0.Add(3 * time.Minute), "apk_b": t0}
	if len(rec.touches) != 1 || !maps.Equal(rec.touches[0], want) {
		t.Fatalf("touches %v, want [%v]", rec.touches, want)
	}
}

// TestTouchMemoryIsBounded: keys not used for a touch interval are forgotten, so the memory of last
// writes holds only recently used keys.
func TestTouchMemoryIsBounded(t *testing.T) {
	clk := &clock{now: t0}
	l := New(&recorder{}, Options{FlushInterval: never, BatchSize: 1, Shards: 1, Now: clk.Now})
	l.Log(entry("apk_a", t0))
	l.Log(entry("apk_b", t0.Add(30*time.Second)))
	clk.Set(t0.Add(75 * time.Second))
	closeLogger(t, l) // the flusher has returned: its map may be read
	if _, ok := l.touchedAt["apk_a"]; ok || len(l.touchedAt) != 1 {
		t.Fatalf("remembered %v; want only apk_b, used within the last minute", l.touchedAt)
	}
}

// TestConcurrentLogs: many goroutines logging at once through the shards lose nothing when the
// buffer is big enough, and every entry is written once.
func TestConcurrentLogs(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: 5 * time.Millisecond, BatchSize: 64, BufferSize: 100_000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				l.Log(entry(fmt.Sprintf("apk_%d_%d", g, i), t0.Add(time.Duration(i)*time.Millisecond)))
			}
		})
	}
	wg.Wait()
	closeLogger(t, l)
	seen := map[string]bool{}
	for _, e := range rec.all() {
		if seen[e.KeyID] {
			t.Fatalf("entry %s written twice", e.KeyID)
		}
		seen[e.KeyID] = true
	}
	if len(seen) != 8000 || l.Dropped() != 0 {
		t.Fatalf("written %d of 8000, dropped %d", len(seen), l.Dropped())
	}
	for _, n := range rec.sizes() {
		if n > 64 {
			t.Fatalf("a batch of %d entries, more than the batch size", n)
		}
	}
}

// waitCounted waits until n written entries wait for the usage writer: the recorder has a batch as
// soon as WriteRequestLogs is called, its counts come once it returned.
func waitCounted(t *testing.T, l *Logger, n int64) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, fmt.Sprintf("%d entries written and counted", n), func() bool { return l.uncounted.Load() == n && l.taking.Load() == 0 })
}

func keyHourCode(key string, ts time.Time, code keyplane.VerifyCode) string {
	return key + " " + ts.UTC().Truncate(time.Hour).Format(time.RFC3339) + " " + string(code)
}

// coded is an entry of key with code.
func coded(key string, ts time.Time, code keyplane.VerifyCode) keyplane.RequestLog {
	e := entry(key, ts)
	e.Code = code
	return e
}

// TestUsageOnTheIntervalNotPerBatch: written batches add no counts to the store until the usage
// interval comes (or Close), and then all of them in one write.
func TestUsageOnTheIntervalNotPerBatch(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: never, UsageInterval: never, BatchSize: 2, Shards: 1})
	for i := range 6 {
		l.Log(coded(fmt.Sprintf("apk_%d", i%2), t0.Add(time.Duration(i)*20*time.Minute), []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyRateLimited, keyplane.VerifyForbidden}[i%3]))
	}
	waitCounted(t, l, 6)
	if n := rec.usageWrites(); n != 0 {
		t.Fatalf("%d usage writes before the usage interval, want none: counts must not go with every batch", n)
	}
	if n := l.Uncounted(); n != 6 {
		t.Errorf("Uncounted() = %d with 6 entries written and none counted", n)
	}
	closeLogger(t, l)
	if n := rec.usageWrites(); n != 1 {
		t.Fatalf("%d usage writes on Close, want 1", n)
	}
	if got, want := rec.counted(), rec.logged(); !maps.Equal(got, want) {
		t.Fatalf("counted %v, logged %v", got, want)
	}
	if n := len(rec.counts[0]); n != 6 {
		t.Errorf("one write of %d counts, want 6: one per key, hour and code", n)
	}
	if n := l.Uncounted(); n != 0 {
		t.Errorf("Uncounted() = %d after Close", n)
	}

	// With an interval that comes, the counts are written without Close.
	rec = &recorder{}
	l = New(rec, Options{FlushInterval: never, UsageInterval: 10 * time.Millisecond, BatchSize: 2, Shards: 1})
	defer closeLogger(t, l)
	for i := range 4 {
		l.Log(entry("apk_1", t0.Add(time.Duration(i)*time.Second)))
	}
	testkit.Eventually(t, 5*time.Second, "the interval's usage write", func() bool { return rec.counted()[keyHourCode("apk_1", t0, keyplane.VerifyValid)] == 4 })
}

// TestCountsEqualTheLogAfterClose: entries logged from many goroutines at once, over keys, hours and
// codes, while batches and usage writes come and go; after Close the counts equal the written log.
func TestCountsEqualTheLogAfterClose(t *testing.T) {
	rec := &recorder{}
	l := New(rec, Options{FlushInterval: time.Millisecond, UsageInterval: 3 * time.Millisecond, BatchSize: 64, BufferSize: 100_000})
	codes := []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyRateLimited, keyplane.VerifyInsufficientPermissions}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				l.Log(coded(fmt.Sprintf("apk_%d", (g+i)%5), t0.Add(time.Duration(i)*3*time.Second), codes[i%len(codes)]))
			}
		})
	}
	wg.Wait()
	closeLogger(t, l)
	logged, counted := rec.logged(), rec.counted()
	var total int64
	for _, n := range logged {
		total += n
	}
	if total != 16000 || l.Dropped() != 0 {
		t.Fatalf("written %d of 16000, dropped %d", total, l.Dropped())
	}
	if !maps.Equal(counted, logged) {
		for k, n := range logged {
			if counted[k] != n {
				t.Errorf("%s: counted %d, logged %d", k, counted[k], n)
			}
		}
		t.Fatalf("%d counts, %d in the log", len(counted), len(logged))
	}
	if l.Uncounted() != 0 || l.UsageLost() != 0 {
		t.Errorf("after Close: Uncounted() %d, UsageLost() %d", l.Uncounted(), l.UsageLost())
	}
	t.Logf("%d batches, %d usage writes", len(rec.sizes()), rec.usageWrites())
}

// TestUsageRetriedMerged: counts the store refuses wait, merged with those that come after, and are
// all written once it takes them; last-used times likewise, moved forward only.
func TestUsageRetriedMerged(t *testing.T) {
	clk := &clock{now: t0}
	rec := &recorder{refuse: true}
	l := New(rec, Options{FlushInterval: never, UsageInterval: never, BatchSize: 2, Shards: 1, Now: clk.Now})
	l.Log(entry("apk_a", t0.Add(time.Second)))
	l.Log(coded("apk_b", t0.Add(2*time.Second), keyplane.VerifyRateLimited))
	waitCounted(t, l, 2)
	if err := l.syncUsage(); err == nil {
		t.Fatal("a refused usage write answered nil")
	}
	clk.Set(t0.Add(time.Minute))
	if age := l.UsageAge(); age != time.Minute {
		t.Errorf("UsageAge() = %s a minute after the start with every write refused, want 1m", age)
	}
	l.Log(entry("apk_a", t0.Add(3*time.Second)))
	l.Log(entry("apk_c", t0.Add(2*time.Hour)))
	waitCounted(t, l, 4)
	if err := l.syncUsage(); err == nil {
		t.Fatal("a refused usage write answered nil")
	}
	if n := l.Uncounted(); n != 4 {
		t.Errorf("Uncounted() = %d with 4 entries written and every usage write refused", n)
	}
	rec.setRefuse(false)
	if err := l.syncUsage(); err != nil {
		t.Fatal(err)
	}
	if age := l.UsageAge(); age != 0 {
		t.Errorf("UsageAge() = %s right after a write", age)
	}
	if rec.usageWrites() != 1 || rec.tries != 3 {
		t.Fatalf("%d usage writes taken of %d tries, want 1 of 3", rec.usageWrites(), rec.tries)
	}
	want := map[string]int64{
		keyHourCode("apk_a", t0, keyplane.VerifyValid): 2, keyHourCode("apk_b", t0, keyplane.VerifyRateLimited): 1,
		keyHourCode("apk_c", t0.Add(2*time.Hour), keyplane.VerifyValid): 1,
	}
	if got := rec.counted(); !maps.Equal(got, want) || !maps.Equal(got, rec.logged()) {
		t.Errorf("counted %v, want %v", got, want)
	}
	wantTouched := map[string]time.Time{"apk_a": t0.Add(3 * time.Second), "apk_b": t0.Add(2 * time.Second), "apk_c": t0.Add(2 * time.Hour)}
	if !maps.Equal(rec.touches[0], wantTouched) {
		t.Errorf("touched %v, want %v", rec.touches[0], wantTouched)
	}
	closeLogger(t, l)
	if rec.usageWrites() != 1 || l.Uncounted() != 0 || l.UsageLost() != 0 {
		t.Errorf("after Close: %d usage writes, Uncounted() %d, UsageLost() %d; want 1, 0, 0", rec.usageWrites(), l.Uncounted(), l.UsageLost())
	}
}

// TestCloseRetriesUsage: on Close the counts are tried again until the store takes them (or Close's
// context ends), so that a clean stop leaves the counts equal to the log.
func TestCloseRetriesUsage(t *testing.T) {
	rec := &recorder{refuse: true}
	l := New(rec, Options{FlushInterval: never, UsageInterval: never, BatchSize: 10, Shards: 1})
	for i := range 3 {
		l.Log(entry("apk_a", t0.Add(time.Duration(i)*time.Second)))
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- l.Close(ctx)
	}()
	testkit.Eventually(t, 5*time.Second, "two refused tries", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.tries >= 2 })
	rec.setRefuse(false)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got, want := rec.counted(), rec.logged(); !maps.Equal(got, want) || len(rec.all()) != 3 {
		t.Fatalf("counted %v, logged %v", got, want)
	}

	// A store that never takes them: Close gives up when its context ends, and says they are lost.
	rec = &recorder{refuse: true}
	l = New(rec, Options{FlushInterval: never, UsageInterval: never, BatchSize: 10, Shards: 1})
	l.Log(entry("apk_a", t0))
	l.Log(entry("apk_b", t0))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := l.Close(ctx); err == nil {
		t.Fatal("Close with a store refusing the counts answered nil")
	}
	testkit.Eventually(t, 5*time.Second, "the loss counted", func() bool { return l.UsageLost() == 2 })
}

// TestPendingCountsAreBounded: while the store refuses counts, at most MaxPendingCounts wait; the
// counts of entries beyond are dropped and counted, never added later: the rollups fall short of the
// log, never exceed it.
func TestPendingCountsAreBounded(t *testing.T) {
	rec := &recorder{refuse: true}
	l := New(rec, Options{FlushInterval: never, UsageInterval: never, BatchSize: 5, Shards: 1, MaxPendingCounts: 2})
	for _, k := range []string{"apk_a", "apk_b", "apk_a", "apk_c", "apk_b"} {
		l.Log(entry(k, t0))
	}
	waitCounted(t, l, 4)
	if l.UsageLost() != 1 || l.Uncounted() != 4 {
		t.Fatalf("UsageLost() %d, Uncounted() %d; want apk_c's 1 lost and 4 waiting", l.UsageLost(), l.Uncounted())
	}
	rec.setRefuse(false)
	closeLogger(t, l)
	want := map[string]int64{keyHourCode("apk_a", t0, keyplane.VerifyValid): 2, keyHourCode("apk_b", t0, keyplane.VerifyValid): 2}
	if got := rec.counted(); !maps.Equal(got, want) {
		t.Fatalf("counted %v, want %v", got, want)
	}
}

// TestUsageCountsIdentityAndCredits: the counts carry each entry's identity and sum the credits its
// verifications spent (the usage export reads them), a key's requests as a key of one identity apart
// from those as a key of another, also through a refused write merged with the next.
func TestUsageCountsIdentityAndCredits(t *testing.T) {
	rec := &recorder{refuse: true}
	l := New(rec, Options{FlushInterval: never, UsageInterval: never, BatchSize: 1, Shards: 1})
	spend := func(identity string, credits int64) keyplane.RequestLog {
		e := entry("apk_a", t0.Add(time.Second))
		e.IdentityID, e.CreditsSpent = identity, credits
		return e
	}
	l.Log(spend("idn_1", 3))
	l.Log(spend("idn_1", 4))
	waitCounted(t, l, 2)
	if err := l.syncUsage(); err == nil {
		t.Fatal("a refused usage write answered nil")
	}
	l.Log(spend("idn_1", 5))
	l.Log(spend("idn_2", 7))
	l.Log(spend("", 0))
	waitCounted(t, l, 5)
	rec.setRefuse(false)
	if err := l.syncUsage(); err != nil {
		t.Fatal(err)
	}
	got := map[string][2]int64{}
	for _, c := range rec.counts[0] {
		got[c.KeyID+"/"+c.IdentityID] = [2]int64{c.Requests, c.CreditsSpent}
	}
	want := map[string][2]int64{"apk_a/idn_1": {3, 12}, "apk_a/idn_2": {1, 7}, "apk_a/": {1, 0}}
	if !maps.Equal(got, want) {
		t.Errorf("counts (requests, credits) %v, want %v", got, want)
	}
	closeLogger(t, l)
}
