package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// logEntry returns a request log entry of k at ts, every field set.
func logEntry(k *keyplane.APIKey, ts time.Time, code keyplane.VerifyCode, source keyplane.LogSource) keyplane.RequestLog {
	return keyplane.RequestLog{
		ID: id.NewAt(id.Request, ts), WorkspaceID: k.WorkspaceID, KeyID: k.ID, Code: code, Source: source,
		Method: "POST", Path: "/v1/verify", IP: "2001:db8::7", UserAgent: "agent/1.0 (café ☕)",
		LatencyMicros: 1234, Timestamp: ts,
	}
}

func writeLogs(t testing.TB, s store.Store, entries []keyplane.RequestLog, touched map[string]time.Time) {
	t.Helper()
	noErr(t, "WriteRequestLogs", s.WriteRequestLogs(t.Context(), entries))
	noErr(t, "AddUsage", s.AddUsage(t.Context(), store.CountUsage(entries), touched))
}

// allLogs pages through a workspace's log with f, limit per page, and returns every entry.
func allLogs(t testing.TB, s store.Store, ws string, f store.LogFilter, limit int) []keyplane.RequestLog {
	t.Helper()
	f.Limit = limit
	var out []keyplane.RequestLog
	for range 10000 {
		page, next, err := s.ListRequestLogs(t.Context(), ws, f)
		noErr(t, "ListRequestLogs", err)
		if len(page) > limit {
			t.Fatalf("ListRequestLogs returned %d entries for limit %d", len(page), limit)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		f.Cursor = next
	}
	t.Fatal("ListRequestLogs never reached its last page")
	return nil
}

// logIDsOf returns the ids of the entries that keep keeps, as the log lists them.
func logIDsOf(entries []keyplane.RequestLog, keep func(*keyplane.RequestLog) bool) []string {
	var out []keyplane.RequestLog
	for i := range entries {
		if keep(&entries[i]) {
			out = append(out, entries[i])
		}
	}
	return ids(newestFirst(out), logID)
}

// newestFirst returns entries sorted as the log lists them: by id, newest first.
func newestFirst(entries []keyplane.RequestLog) []keyplane.RequestLog {
	out := slices.Clone(entries)
	slices.SortFunc(out, func(a, b keyplane.RequestLog) int { return strings.Compare(b.ID, a.ID) })
	return out
}

func logID(e *keyplane.RequestLog) string { return e.ID }

func testRequestLogs(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	ka, kb := newKey(w, at(time.Second)), newKey(w, at(2*time.Second))
	kc := newKey(other, at(3*time.Second))
	insertKeys(t, s, ka, kb, kc)

	// 300 entries in one batch take several multi-row statements.
	var mine, theirs []keyplane.RequestLog
	var batch []keyplane.RequestLog
	for i := range 300 {
		ts := at(time.Duration(i) * 1500 * time.Microsecond)
		k := []*keyplane.APIKey{ka, kb, kc}[i%3]
		e := logEntry(k, ts, keyplane.VerifyValid, keyplane.SourceVerify)
		if k == kc {
			theirs = append(theirs, e)
		} else {
			mine = append(mine, e)
		}
		// The store gives times back in UTC whatever zone they came in.
		e.Timestamp = elsewhere(e.Timestamp)
		batch = append(batch, e)
	}
	// Every field round-trips, the empty ones included.
	bare := keyplane.RequestLog{ID: id.NewAt(id.Request, at(time.Hour)), WorkspaceID: w.ID, KeyID: ka.ID,
		Code: keyplane.VerifyRevoked, Source: keyplane.SourceManagement, Timestamp: at(time.Hour)}
	mine = append(mine, bare)
	batch = append(batch, bare)
	writeLogs(t, s, batch, nil)

	equal(t, "workspace's log", allLogs(t, s, w.ID, store.LogFilter{}, 100), newestFirst(mine))
	equal(t, "other workspace's log", allLogs(t, s, other.ID, store.LogFilter{}, 100), newestFirst(theirs))
	got, next, err := s.ListRequestLogs(ctx, "ws_none", store.LogFilter{Limit: 10})
	noErr(t, "ListRequestLogs(unknown workspace)", err)
	if got == nil || len(got) != 0 || next != "" {
		t.Errorf("log of an unknown workspace = %v, %q; want [] and no cursor", got, next)
	}
	// An empty batch writes nothing.
	writeLogs(t, s, nil, nil)
	writeLogs(t, s, []keyplane.RequestLog{}, map[string]time.Time{})

	_, _, err = s.ListRequestLogs(ctx, w.ID, store.LogFilter{Limit: 10, Cursor: "garbage!"})
	wantErr(t, "ListRequestLogs(bad cursor)", err, store.ErrBadCursor)
	_, keyCursor, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 1}})
	noErr(t, "ListAPIKeys", err)
	_, _, err = s.ListRequestLogs(ctx, w.ID, store.LogFilter{Limit: 10, Cursor: keyCursor})
	wantErr(t, "ListRequestLogs(a key list's cursor)", err, store.ErrBadCursor)

	// A batch goes in whole or not at all. Ids are unique by construction (80 random bits) and need
	// not be checked one by one; this batch fails because bare, written again alone in its minute,
	// makes a block that is there already.
	dup := []keyplane.RequestLog{logEntry(kb, at(2*time.Hour), keyplane.VerifyValid, keyplane.SourceVerify), bare}
	if err := s.WriteRequestLogs(ctx, dup); err == nil {
		t.Fatal("WriteRequestLogs accepted a batch whose block is there already")
	}
	equal(t, "log after a failed batch", allLogs(t, s, w.ID, store.LogFilter{}, 100), newestFirst(mine))
	usage, err := s.Usage(ctx, w.ID, kb.ID, store.UsageFilter{Bucket: time.Hour, Since: at(time.Hour), Until: at(3 * time.Hour)})
	noErr(t, "Usage", err)
	if len(usage) != 0 {
		t.Errorf("a failed batch left rollups: %v", usage)
	}
	if k, err := s.GetAPIKey(ctx, w.ID, kb.ID); err != nil || k.LastUsedAt != nil {
		t.Errorf("a failed batch moved the last use: %v, %v", k.LastUsedAt, err)
	}
}

func testRequestLogFilters(t *testing.T, s store.Store) {
	w := createWorkspace(t, s, "acme", at(0))
	ka, kb := newKey(w, at(time.Second)), newKey(w, at(2*time.Second))
	insertKeys(t, s, ka, kb)

	// Two entries share each millisecond, 400 µs apart, so that time bounds are checked to the
	// microsecond, not only to the millisecond ids carry.
	codes := []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyRateLimited, keyplane.VerifyForbidden}
	var entries []keyplane.RequestLog
	for i := range 40 {
		ts := at(time.Duration(i/2)*time.Millisecond + time.Duration(i%2)*400*time.Microsecond)
		k := ka
		if i%4 == 3 {
			k = kb
		}
		src := keyplane.SourceVerify
		if i%5 == 0 {
			src = keyplane.SourceManagement
		}
		entries = append(entries, logEntry(k, ts, codes[i%3], src))
	}
	writeLogs(t, s, entries, nil)

	since, until := entries[9].Timestamp, entries[30].Timestamp // odd and even: mid-millisecond and on it
	for _, c := range []struct {
		name string
		f    store.LogFilter
		keep func(e *keyplane.RequestLog) bool
	}{
		{"key", store.LogFilter{KeyID: kb.ID}, func(e *keyplane.RequestLog) bool { return e.KeyID == kb.ID }},
		{"code", store.LogFilter{Code: keyplane.VerifyRateLimited}, func(e *keyplane.RequestLog) bool { return e.Code == keyplane.VerifyRateLimited }},
		{"source", store.LogFilter{Source: keyplane.SourceManagement}, func(e *keyplane.RequestLog) bool { return e.Source == keyplane.SourceManagement }},
		{"since", store.LogFilter{Since: &since}, func(e *keyplane.RequestLog) bool { return !e.Timestamp.Before(since) }},
		{"until", store.LogFilter{Until: &until}, func(e *keyplane.RequestLog) bool { return e.Timestamp.Before(until) }},
		{"since and until", store.LogFilter{Since: &since, Until: &until}, func(e *keyplane.RequestLog) bool {
			return !e.Timestamp.Before(since) && e.Timestamp.Before(until)
		}},
		{"all at once", store.LogFilter{KeyID: ka.ID, Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Since: &since, Until: &until},
			func(e *keyplane.RequestLog) bool {
				return e.KeyID == ka.ID && e.Code == keyplane.VerifyValid && e.Source == keyplane.SourceVerify &&
					!e.Timestamp.Before(since) && e.Timestamp.Before(until)
			}},
		{"unknown key", store.LogFilter{KeyID: "apk_none"}, func(*keyplane.RequestLog) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var want []keyplane.RequestLog
			for i := range entries {
				if c.keep(&entries[i]) {
					want = append(want, entries[i])
				}
			}
			got := allLogs(t, s, w.ID, c.f, 3)
			equal(t, "filtered log", ids(got, logID), ids(newestFirst(want), logID))
		})
	}
}

// testRequestLogPagination pages through a workspace's log while another goroutine keeps writing
// batches, older and newer than the page being read: every entry that was there at the start is seen
// exactly once, and no entry twice.
func testRequestLogPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	k := newKey(w, at(time.Second))
	insertKeys(t, s, k)

	var initial []keyplane.RequestLog
	for i := range 300 {
		initial = append(initial, logEntry(k, at(time.Duration(i)*time.Second), keyplane.VerifyValid, keyplane.SourceVerify))
	}
	writeLogs(t, s, initial, nil)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writerErr error
	written := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			var batch []keyplane.RequestLog
			for range 5 {
				// Anywhere from before the first initial entry to well after the last.
				ts := at(time.Duration(r.IntN(400_000)-50_000) * time.Millisecond)
				batch = append(batch, logEntry(k, ts, keyplane.VerifyDisabled, keyplane.SourceVerify))
			}
			if err := s.WriteRequestLogs(ctx, batch); err != nil {
				writerErr = err
				return
			}
			written += len(batch)
		}
	}()

	seen := map[string]int{}
	var order []string
	f := store.LogFilter{Limit: 7}
	for pages := 0; ; pages++ {
		page, next, err := s.ListRequestLogs(ctx, w.ID, f)
		noErr(t, "ListRequestLogs", err)
		for _, e := range page {
			seen[e.ID]++
			order = append(order, e.ID)
		}
		if next == "" {
			break
		}
		f.Cursor = next
		if pages == 5 {
			// Make sure the writer has had its turn while we page.
			time.Sleep(20 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if writerErr != nil {
		t.Fatalf("concurrent WriteRequestLogs: %v", writerErr)
	}
	if written == 0 {
		t.Fatal("the concurrent writer wrote nothing: the test proves nothing")
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("entry %s listed %d times", id, n)
		}
	}
	for _, e := range initial {
		if seen[e.ID] != 1 {
			t.Errorf("entry %s, there before paging began, listed %d times", e.ID, seen[e.ID])
		}
	}
	if !slices.IsSortedFunc(order, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Error("pages are not in one newest-first order")
	}
}

func testUsage(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	ka, kb := newKey(w, at(time.Second)), newKey(w, at(2*time.Second))
	kc := newKey(other, at(3*time.Second))
	insertKeys(t, s, ka, kb, kc)

	// t0 is 12:00:00.123456 on a day: entries over three hours of that day and one of the next.
	hour := t0().Truncate(time.Hour)
	day := t0().Truncate(24 * time.Hour)
	offsets := []time.Duration{0, time.Minute, 59 * time.Minute, time.Hour, 90 * time.Minute, 2 * time.Hour, 26 * time.Hour}
	codes := []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyRateLimited,
		keyplane.VerifyValid, keyplane.VerifyExpired, keyplane.VerifyRateLimited, keyplane.VerifyValid}
	var entries []keyplane.RequestLog
	for i, off := range offsets {
		entries = append(entries, logEntry(ka, at(off), codes[i], keyplane.SourceVerify))
		if i%2 == 0 {
			entries = append(entries, logEntry(kb, at(off), keyplane.VerifyValid, keyplane.SourceVerify))
		}
		entries = append(entries, logEntry(kc, at(off), keyplane.VerifyValid, keyplane.SourceVerify))
	}
	// Two batches over the same hours: rollups add up.
	writeLogs(t, s, entries[:7], nil)
	writeLogs(t, s, entries[7:], nil)

	// expect sums the entries of key k into buckets of width from since to until, from the raw log:
	// rollups must equal the raw counts.
	raw := allLogs(t, s, w.ID, store.LogFilter{}, 100)
	expect := func(k *keyplane.APIKey, width time.Duration, since, until time.Time) []keyplane.UsageBucket {
		out := []keyplane.UsageBucket{}
		for _, e := range slices.Backward(raw) {
			h := e.Timestamp.Truncate(time.Hour)
			if (k != nil && e.KeyID != k.ID) || h.Before(since) || !h.Before(until) {
				continue
			}
			start := e.Timestamp.Truncate(width)
			if len(out) == 0 || !out[len(out)-1].Start.Equal(start) {
				out = append(out, keyplane.UsageBucket{Start: start, Codes: map[keyplane.VerifyCode]int64{}})
			}
			out[len(out)-1].Add(e.Code, 1)
		}
		return out
	}
	for _, c := range []usageCase{
		{"hours", ka, time.Hour, hour.Add(-time.Hour), hour.Add(48 * time.Hour)},
		{"hours, range cut", ka, time.Hour, hour.Add(time.Hour), hour.Add(2 * time.Hour)},
		{"days", ka, 24 * time.Hour, day, day.Add(72 * time.Hour)},
		{"days, range cut to hours", ka, 24 * time.Hour, hour.Add(time.Hour), hour.Add(26 * time.Hour)},
		{"another key", kb, time.Hour, day, day.Add(72 * time.Hour)},
		{"the workspace, hours", nil, time.Hour, day, day.Add(72 * time.Hour)},
		{"the workspace, days", nil, 24 * time.Hour, day, day.Add(72 * time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			keyID := ""
			if c.k != nil {
				keyID = c.k.ID
			}
			got, err := s.Usage(ctx, w.ID, keyID, store.UsageFilter{Bucket: c.width, Since: c.since, Until: c.until})
			noErr(t, "Usage", err)
			want := c.expect(expect)
			equal(t, "usage", got, want)
			if len(want) == 0 {
				t.Fatal("the case expects no buckets: it checks nothing")
			}
		})
	}
	hours, err := s.Usage(ctx, w.ID, ka.ID, store.UsageFilter{Bucket: time.Hour, Since: day, Until: day.Add(72 * time.Hour)})
	noErr(t, "Usage", err)
	if len(hours) != 4 || hours[0].Total != 3 || hours[0].Valid != 2 || hours[0].Codes[keyplane.VerifyRateLimited] != 1 {
		t.Errorf("hourly usage of ka = %+v; want 4 buckets, the first 3 requests, 2 valid, 1 rate limited", hours)
	}
	// The workspace's sums leave the other workspace's key out: ka and kb only.
	all, err := s.Usage(ctx, w.ID, "", store.UsageFilter{Bucket: 24 * time.Hour, Since: day, Until: day.Add(72 * time.Hour)})
	noErr(t, "Usage", err)
	if len(all) != 2 || all[0].Total != 6+3 || all[1].Total != 1+1 {
		t.Errorf("daily usage of the workspace = %+v; want 9 requests on the first day and 2 on the next", all)
	}

	// Another workspace's key, or an unknown one, has no usage here.
	for _, c := range []struct{ ws, key string }{{w.ID, kc.ID}, {other.ID, ka.ID}, {w.ID, "apk_none"}} {
		got, err := s.Usage(ctx, c.ws, c.key, store.UsageFilter{Bucket: time.Hour, Since: day, Until: day.Add(72 * time.Hour)})
		noErr(t, "Usage", err)
		if got == nil || len(got) != 0 {
			t.Errorf("Usage(%s, %s) = %v, want []", c.ws, c.key, got)
		}
	}
	if _, err := s.Usage(ctx, w.ID, ka.ID, store.UsageFilter{Bucket: time.Minute, Since: day, Until: day.Add(time.Hour)}); err == nil {
		t.Error("Usage accepted buckets of a minute")
	}
}

// usageCase asks for a key's usage (the workspace's when k is nil) in buckets of width over
// [since, until).
type usageCase struct {
	name         string
	k            *keyplane.APIKey
	width        time.Duration
	since, until time.Time
}

// expect calls f, the expectation, with the case's own fields.
func (c usageCase) expect(f func(*keyplane.APIKey, time.Duration, time.Time, time.Time) []keyplane.UsageBucket) []keyplane.UsageBucket {
	return f(c.k, c.width, c.since, c.until)
}

func testTouchKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	k := newKey(w, at(time.Second))
	insertKeys(t, s, k)
	lastUsed := func() *time.Time {
		t.Helper()
		got, err := s.GetAPIKey(ctx, w.ID, k.ID)
		noErr(t, "GetAPIKey", err)
		return got.LastUsedAt
	}
	if lu := lastUsed(); lu != nil {
		t.Fatalf("a new key's last use = %v", lu)
	}
	// A touch alone, without entries, and one of a key that is gone, are fine.
	writeLogs(t, s, nil, map[string]time.Time{k.ID: elsewhere(at(time.Minute)), "apk_gone": at(time.Minute)})
	equal(t, "last use", lastUsed(), ptr(at(time.Minute)))
	// Only forward.
	writeLogs(t, s, nil, map[string]time.Time{k.ID: at(30 * time.Second)})
	equal(t, "last use after an older touch", lastUsed(), ptr(at(time.Minute)))
	writeLogs(t, s, []keyplane.RequestLog{logEntry(k, at(2*time.Minute), keyplane.VerifyValid, keyplane.SourceVerify)},
		map[string]time.Time{k.ID: at(2 * time.Minute)})
	equal(t, "last use after a newer touch", lastUsed(), ptr(at(2*time.Minute)))

	// A change to the key made from a read older than the touch does not set the last use back.
	stale, err := s.GetAPIKey(ctx, w.ID, k.ID)
	noErr(t, "GetAPIKey", err)
	writeLogs(t, s, nil, map[string]time.Time{k.ID: at(3 * time.Minute)})
	stale.Name, stale.UpdatedAt = "renamed", at(4*time.Minute)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, stale) })
	equal(t, "last use after a change from a stale read", lastUsed(), ptr(at(3*time.Minute)))
	inTx(t, s, w.ID, func(tx store.Tx) error {
		got, err := tx.GetAPIKey(ctx, w.ID, k.ID)
		noErr(t, "GetAPIKey in a transaction", err)
		equal(t, "last use read in a transaction", got.LastUsedAt, ptr(at(3*time.Minute)))
		return nil
	})

	// A last use an older version stored with the key (api_keys.last_used_at) stands until a later
	// touch passes it.
	old := newKey(w, at(2*time.Second), func(k *keyplane.APIKey) { k.LastUsedAt = ptr(at(10 * time.Minute)) })
	insertKeys(t, s, old)
	writeLogs(t, s, nil, map[string]time.Time{old.ID: at(5 * time.Minute)})
	got, err := s.GetAPIKey(ctx, w.ID, old.ID)
	noErr(t, "GetAPIKey", err)
	equal(t, "an older version's last use, after an earlier touch", got.LastUsedAt, ptr(at(10*time.Minute)))
	writeLogs(t, s, nil, map[string]time.Time{old.ID: at(11 * time.Minute)})
	got, err = s.GetAPIKey(ctx, w.ID, old.ID)
	noErr(t, "GetAPIKey", err)
	equal(t, "an older version's last use, after a later touch", got.LastUsedAt, ptr(at(11*time.Minute)))

	// Many keys touched at once and listed at once: more than one statement's rows either way.
	many := createWorkspace(t, s, "many", at(0))
	touched := map[string]time.Time{}
	var keys []*keyplane.APIKey
	for i := range 300 {
		k := newKey(many, at(time.Duration(i)*time.Millisecond), publishable(keyplane.EnvLive))
		keys = append(keys, k)
		if i%3 != 0 {
			touched[k.ID] = at(time.Hour + time.Duration(i)*time.Second)
		}
	}
	inTx(t, s, many.ID, func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.InsertAPIKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	writeLogs(t, s, nil, touched)
	listed, _, err := s.ListAPIKeys(ctx, many.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 1000}})
	noErr(t, "ListAPIKeys", err)
	if len(listed) != len(keys) {
		t.Fatalf("listed %d keys, want %d", len(listed), len(keys))
	}
	for _, k := range listed {
		var want *time.Time
		if at, ok := touched[k.ID]; ok {
			want = &at
		}
		equal(t, "listed key's last use", k.LastUsedAt, want)
	}
	insertSecrets(t, s, newSecret(keys[len(keys)-1], "newest", at(time.Second)))
	newest, _, err := s.NewestPublishableKey(ctx, many.ID, keyplane.EnvLive, at(2*time.Hour))
	noErr(t, "NewestPublishableKey", err)
	want := touched[keys[len(keys)-1].ID]
	equal(t, "newest publishable key's last use", newest.LastUsedAt, &want)
}

func testPruneRequestLogs(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	k, k2 := newKey(w, at(time.Second)), newKey(other, at(time.Second))
	insertKeys(t, s, k, k2)
	var entries, entries2 []keyplane.RequestLog
	for i := range 10 {
		entries = append(entries, logEntry(k, at(time.Duration(i)*time.Hour), keyplane.VerifyValid, keyplane.SourceVerify))
		entries2 = append(entries2, logEntry(k2, at(time.Duration(i)*time.Hour+time.Minute), keyplane.VerifyValid, keyplane.SourceVerify))
	}
	writeLogs(t, s, slices.Concat(entries, entries2), nil)

	// Entries before the cutoff go, in every workspace, a bounded number per call: those of the key
	// spans (five minutes) that end by the cutoff, entries 0–5 of each workspace. Entries 6, at 6h00
	// and 6h01, are older than the cutoff but their span is not over.
	cutoff := at(6*time.Hour + 2*time.Minute)
	var total int64
	for calls := 0; ; calls++ {
		n, err := s.PruneRequestLogs(ctx, cutoff, 3)
		noErr(t, "PruneRequestLogs", err)
		if n > 3 {
			t.Fatalf("PruneRequestLogs deleted %d entries, limit 3", n)
		}
		total += n
		if n < 3 {
			break
		}
		if calls > 10 {
			t.Fatal("PruneRequestLogs never finished")
		}
	}
	if total != 12 {
		t.Errorf("pruned %d entries, want 12", total)
	}
	equal(t, "log after pruning", ids(allLogs(t, s, w.ID, store.LogFilter{}, 100), logID), ids(newestFirst(entries[6:]), logID))
	equal(t, "other workspace's log after pruning", ids(allLogs(t, s, other.ID, store.LogFilter{}, 100), logID), ids(newestFirst(entries2[6:]), logID))
	if _, err := s.PruneRequestLogs(ctx, cutoff, 0); err == nil {
		t.Error("PruneRequestLogs accepted a limit of 0")
	}

	// Rollups of hours that ended by the cutoff go, of every key; the hour the cutoff falls in stays.
	hour := t0().Truncate(time.Hour)
	usage := func() []keyplane.UsageBucket {
		got, err := s.Usage(ctx, w.ID, k.ID, store.UsageFilter{Bucket: time.Hour, Since: hour.Add(-time.Hour), Until: hour.Add(24 * time.Hour)})
		noErr(t, "Usage", err)
		return got
	}
	if n := len(usage()); n != 10 {
		t.Fatalf("%d hourly buckets before pruning, want 10", n)
	}
	total = 0
	for {
		n, err := s.PruneUsage(ctx, hour.Add(4*time.Hour+time.Minute), 2)
		noErr(t, "PruneUsage", err)
		total += n
		if n < 2 {
			break
		}
	}
	left := usage()
	if total != 8 || len(left) != 6 || !left[0].Start.Equal(hour.Add(4*time.Hour)) {
		t.Errorf("pruned %d rollups, left %v; want 8 pruned (4 per key) and 6 left from %v", total,
			fmt.Sprint(ids(left, func(b *keyplane.UsageBucket) string { return keyplane.FormatTime(b.Start) })), hour.Add(4*time.Hour))
	}
}

// testRequestLogBlocks checks what storing entries in blocks must not change: batches whose entries
// interleave in time (blocks that overlap) list in one order by id, whole and by key, a page at a
// time; and pruning by whole blocks, a limit smaller than a block included, leaves exactly the newer
// entries, found by key too.
func testRequestLogBlocks(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	ka, kb := newKey(w, at(time.Second)), newKey(w, at(2*time.Second))
	insertKeys(t, s, ka, kb)
	var all []keyplane.RequestLog
	// Three minutes, the first two of one key span (five minutes), the third the first of the next;
	// in each, three batches whose entries interleave (every third millisecond is one batch's), so
	// that each minute's blocks overlap.
	const span = 5 * time.Minute
	minute := t0().Truncate(span).Add(time.Hour)
	for _, offset := range []time.Duration{0, time.Minute, span} {
		for b := range 3 {
			var batch []keyplane.RequestLog
			for i := range 40 {
				k := []*keyplane.APIKey{ka, kb}[(i+b)%2]
				batch = append(batch, logEntry(k, minute.Add(offset+time.Duration(3*i+b)*time.Millisecond),
					keyplane.VerifyValid, keyplane.SourceVerify))
			}
			writeLogs(t, s, batch, nil)
			all = append(all, batch...)
		}
	}
	of := func(keep func(*keyplane.RequestLog) bool) []string { return logIDsOf(all, keep) }
	anyKey := func(*keyplane.RequestLog) bool { return true }
	for _, limit := range []int{1, 7, 1000} {
		equal(t, fmt.Sprintf("log, %d a page", limit), ids(allLogs(t, s, w.ID, store.LogFilter{}, limit), logID), of(anyKey))
		for _, k := range []*keyplane.APIKey{ka, kb} {
			equal(t, fmt.Sprintf("log of a key, %d a page", limit), ids(allLogs(t, s, w.ID, store.LogFilter{KeyID: k.ID}, limit), logID),
				of(func(e *keyplane.RequestLog) bool { return e.KeyID == k.ID }))
		}
	}

	// Everything of the first span goes, with a limit smaller than a block; the third minute, older
	// than the cutoff too, stays with its span, which is not over.
	cutoff := minute.Add(span + time.Minute)
	var total int64
	for calls := 0; ; calls++ {
		n, err := s.PruneRequestLogs(ctx, cutoff, 10)
		noErr(t, "PruneRequestLogs", err)
		if total += n; n < 10 {
			break
		}
		if calls > 100 {
			t.Fatal("PruneRequestLogs never finished")
		}
	}
	if total != 240 {
		t.Errorf("pruned %d entries, want the 240 of the first two minutes", total)
	}
	newer := func(e *keyplane.RequestLog) bool { return !e.Timestamp.Before(minute.Add(span)) }
	equal(t, "log after pruning", ids(allLogs(t, s, w.ID, store.LogFilter{}, 50), logID), of(newer))
	equal(t, "log of a key after pruning", ids(allLogs(t, s, w.ID, store.LogFilter{KeyID: ka.ID}, 50), logID),
		of(func(e *keyplane.RequestLog) bool { return newer(e) && e.KeyID == ka.ID }))
	if n, err := s.PruneRequestLogs(ctx, cutoff, 10); err != nil || n != 0 {
		t.Errorf("PruneRequestLogs again = %d, %v; want nothing left", n, err)
	}
}

// testRequestLogKeyMinutes checks one key's log where it is found a key span (five minutes) at a
// time: a key with an entry in each of more spans than one read of its spans takes, and a key in more
// batches of one minute than one read of blocks takes (its span's row written once, by the first),
// listed whole, a page at a time, and between since and until.
func testRequestLogKeyMinutes(t *testing.T, s store.Store) {
	w := createWorkspace(t, s, "acme", at(0))
	sparse, busy, other := newKey(w, at(time.Second)), newKey(w, at(2*time.Second)), newKey(w, at(3*time.Second))
	insertKeys(t, s, sparse, busy, other)
	start := t0().Truncate(time.Minute).Add(2 * time.Hour)
	var all []keyplane.RequestLog
	for m := range 70 {
		at := start.Add(time.Duration(m)*5*time.Minute + 7*time.Second)
		batch := []keyplane.RequestLog{logEntry(sparse, at, keyplane.VerifyValid, keyplane.SourceVerify),
			logEntry(other, at.Add(time.Millisecond), keyplane.VerifyValid, keyplane.SourceVerify)}
		writeLogs(t, s, batch, nil)
		all = append(all, batch...)
	}
	busyMinute := start.Add(30 * time.Minute)
	for b := range 20 {
		at := busyMinute.Add(time.Duration(20+b) * time.Second)
		batch := []keyplane.RequestLog{logEntry(busy, at, keyplane.VerifyValid, keyplane.SourceVerify),
			logEntry(other, at.Add(time.Millisecond), keyplane.VerifyValid, keyplane.SourceVerify)}
		writeLogs(t, s, batch, nil)
		all = append(all, batch...)
	}
	of := func(keep func(*keyplane.RequestLog) bool) []string { return logIDsOf(all, keep) }
	since, until := start.Add(10*time.Minute+7*time.Second), busyMinute.Add(30*time.Second)
	for _, k := range []*keyplane.APIKey{sparse, busy, other} {
		for _, limit := range []int{1, 5, 1000} {
			equal(t, fmt.Sprintf("log of a key, %d a page", limit), ids(allLogs(t, s, w.ID, store.LogFilter{KeyID: k.ID}, limit), logID),
				of(func(e *keyplane.RequestLog) bool { return e.KeyID == k.ID }))
			equal(t, fmt.Sprintf("log of a key between since and until, %d a page", limit),
				ids(allLogs(t, s, w.ID, store.LogFilter{KeyID: k.ID, Since: &since, Until: &until}, limit), logID),
				of(func(e *keyplane.RequestLog) bool {
					return e.KeyID == k.ID && !e.Timestamp.Before(since) && e.Timestamp.Before(until)
				}))
		}
	}
}
