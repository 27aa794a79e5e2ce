package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// testRequestLogUsageFields: an entry's identity, credits spent and tags round-trip, and the tag
// filter matches one tag exactly: not a prefix, not a part of another, not across tags, whatever
// characters the tags hold; combined with the other filters and paged.
func testRequestLogUsageFields(t *testing.T, s store.Store) {
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	k, k2 := newKey(w, at(time.Second)), newKey(other, at(time.Second))
	insertKeys(t, s, k, k2)

	tagSets := [][]string{
		{"a"},
		{"ab", "x"},
		{`","`, `q"uote`, `back\slash`},
		{"a,b"},
		{"é☕", "%", "_"},
		nil,
		{"A"},
		{"a", "ab"},
	}
	var entries []keyplane.RequestLog
	for i := range 40 {
		e := logEntry(k, at(time.Duration(i)*time.Millisecond), keyplane.VerifyValid, keyplane.SourceVerify)
		e.Tags = tagSets[i%len(tagSets)]
		if i%2 == 0 {
			e.IdentityID, e.CreditsSpent = "idn_x", int64(i)
		}
		if i%5 == 0 {
			e.Code = keyplane.VerifyUsageExceeded
		}
		entries = append(entries, e)
	}
	theirs := logEntry(k2, at(0), keyplane.VerifyValid, keyplane.SourceVerify)
	theirs.Tags = []string{"a"}
	writeLogs(t, s, append(entries, theirs), nil)

	equal(t, "every entry", allLogs(t, s, w.ID, store.LogFilter{}, 7), newestFirst(entries))
	for _, tag := range []string{"a", "ab", `","`, `q"uote`, `back\slash`, "a,b", "é☕", "%", "_", "A", "x", ",", "b", `"a"`, "[", "nope"} {
		for _, code := range []keyplane.VerifyCode{"", keyplane.VerifyUsageExceeded} {
			t.Run(fmt.Sprintf("tag=%s,code=%s", tag, code), func(t *testing.T) {
				var want []keyplane.RequestLog
				for _, e := range entries {
					has := false
					for _, x := range e.Tags {
						has = has || x == tag
					}
					if has && (code == "" || e.Code == code) {
						want = append(want, e)
					}
				}
				if want == nil {
					want = []keyplane.RequestLog{}
				}
				got := allLogs(t, s, w.ID, store.LogFilter{Tag: tag, Code: code}, 3)
				if len(got) == 0 {
					got = []keyplane.RequestLog{}
				}
				equal(t, "entries of the tag", got, newestFirst(want))
			})
		}
	}
}

// testExportUsage: usage rows per key or identity, per hour, day and month (UTC), ordered by period
// then group, with their totals, valid counts, credits and codes, each identity's current
// externalId; periods whose start is outside [since, until) are left out; Usage answers as before.
func testExportUsage(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	alice := newIdentity(w, "cus_alice", at(0))
	bob := newIdentity(w, "cus_bob", at(time.Millisecond)) // after alice: MAX(identity) is bob
	insertIdentities(t, s, alice, bob)
	ka := newKey(w, at(time.Second), func(k *keyplane.APIKey) { k.IdentityID = alice.ID })
	kb := newKey(w, at(2*time.Second), func(k *keyplane.APIKey) { k.IdentityID = bob.ID })
	kn := newKey(w, at(3*time.Second))
	ko := newKey(other, at(time.Second))
	insertKeys(t, s, ka, kb, kn, ko)

	// t0 is 2025-06-01 12:00:00.123456 UTC. Requests at +0h (June 1), +1h (June 1), +13h (June 2) and
	// +30 days (July 1).
	base := at(0)
	var entries []keyplane.RequestLog
	add := func(k *keyplane.APIKey, identityID string, d time.Duration, code keyplane.VerifyCode, credits int64, n int) {
		for i := range n {
			e := logEntry(k, base.Add(d+time.Duration(i)*time.Millisecond), code, keyplane.SourceVerify)
			e.IdentityID, e.CreditsSpent = identityID, credits
			entries = append(entries, e)
		}
	}
	add(ka, alice.ID, 0, keyplane.VerifyValid, 2, 3)
	add(ka, alice.ID, 0, keyplane.VerifyUsageExceeded, 0, 1)
	add(kb, bob.ID, 0, keyplane.VerifyValid, 5, 2)
	add(kn, "", 0, keyplane.VerifyValid, 0, 4)
	add(ka, alice.ID, time.Hour, keyplane.VerifyRateLimited, 0, 2)
	add(kb, alice.ID, 13*time.Hour, keyplane.VerifyValid, 1, 1) // kb moved to alice
	add(kb, bob.ID, 13*time.Hour, keyplane.VerifyValid, 1, 2)
	add(ka, alice.ID, 30*24*time.Hour, keyplane.VerifyValid, 10, 1)
	add(ko, "idn_other", 0, keyplane.VerifyValid, 100, 5)
	writeLogs(t, s, entries, nil)
	// Alice's externalId changes afterwards: the export says the current one.
	renamed := *alice
	renamed.ExternalID = "cus_alice2"
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateIdentity(ctx, &renamed) })

	hour := func(h int) time.Time { return time.Date(2025, 6, 1, 12+h, 0, 0, 0, time.UTC) }
	day := func(d int) time.Time { return time.Date(2025, 6, d, 0, 0, 0, 0, time.UTC) }
	month := func(m time.Month) time.Time { return time.Date(2025, m, 1, 0, 0, 0, 0, time.UTC) }
	codes := func(kv ...any) map[keyplane.VerifyCode]int64 {
		m := map[keyplane.VerifyCode]int64{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(keyplane.VerifyCode)] += int64(kv[i+1].(int))
		}
		return m
	}
	V, U, R := keyplane.VerifyValid, keyplane.VerifyUsageExceeded, keyplane.VerifyRateLimited
	key := func(k *keyplane.APIKey, idn *keyplane.Identity, start time.Time, credits int64, c map[keyplane.VerifyCode]int64) keyplane.UsageRow {
		r := keyplane.UsageRow{KeyID: k.ID, Start: start, CreditsSpent: credits, Codes: c}
		if idn != nil {
			r.IdentityID, r.ExternalID = idn.ID, "cus_bob"
			if idn == alice {
				r.ExternalID = "cus_alice2"
			}
		}
		for code, n := range c {
			r.Total += n
			if code == V {
				r.Valid += n
			}
		}
		return r
	}
	ident := func(idn *keyplane.Identity, start time.Time, credits int64, c map[keyplane.VerifyCode]int64) keyplane.UsageRow {
		r := key(ka, idn, start, credits, c)
		r.KeyID = ""
		return r
	}
	// Rows of one period are in group id order: keys ka < kb < kn, identities by id.
	byID := func(a, b keyplane.UsageRow) []keyplane.UsageRow {
		if a.IdentityID > b.IdentityID {
			return []keyplane.UsageRow{b, a}
		}
		return []keyplane.UsageRow{a, b}
	}

	cases := []struct {
		name string
		f    keyplane.ExportFilter
		want []keyplane.UsageRow
	}{
		{"KeyByHour", keyplane.ExportFilter{GroupBy: keyplane.GroupByKey, Granularity: keyplane.GranularityHour, Since: hour(0), Until: hour(14)},
			[]keyplane.UsageRow{
				key(ka, alice, hour(0), 6, codes(V, 3, U, 1)),
				key(kb, bob, hour(0), 10, codes(V, 2)),
				key(kn, nil, hour(0), 0, codes(V, 4)),
				key(ka, alice, hour(1), 0, codes(R, 2)),
				key(kb, bob, hour(13), 3, codes(V, 3)), // moved within the hour: the larger identity id
			}},
		{"KeyByDay", keyplane.ExportFilter{GroupBy: keyplane.GroupByKey, Granularity: keyplane.GranularityDay, Since: day(1), Until: day(30)},
			[]keyplane.UsageRow{
				key(ka, alice, day(1), 6, codes(V, 3, U, 1, R, 2)),
				key(kb, bob, day(1), 10, codes(V, 2)),
				key(kn, nil, day(1), 0, codes(V, 4)),
				key(kb, bob, day(2), 3, codes(V, 3)),
			}},
		{"IdentityByMonth", keyplane.ExportFilter{GroupBy: keyplane.GroupByIdentity, Granularity: keyplane.GranularityMonth, Since: month(6), Until: month(8)},
			append(byID(ident(alice, month(6), 7, codes(V, 4, U, 1, R, 2)), ident(bob, month(6), 12, codes(V, 4))),
				ident(alice, month(7), 10, codes(V, 1)))},
		{"IdentityByDay", keyplane.ExportFilter{GroupBy: keyplane.GroupByIdentity, Granularity: keyplane.GranularityDay, Since: day(2), Until: day(3)},
			byID(ident(alice, day(2), 1, codes(V, 1)), ident(bob, day(2), 2, codes(V, 2)))},
		// June's start is before since: June is left out, though since is in it.
		{"SinceMidPeriod", keyplane.ExportFilter{GroupBy: keyplane.GroupByKey, Granularity: keyplane.GranularityMonth, Since: day(2), Until: month(8)},
			[]keyplane.UsageRow{key(ka, alice, month(7), 10, codes(V, 1))}},
		// The hour of until is out; the periods of the window are read whole.
		{"UntilExclusive", keyplane.ExportFilter{GroupBy: keyplane.GroupByKey, Granularity: keyplane.GranularityHour, Since: hour(1), Until: hour(13)},
			[]keyplane.UsageRow{key(ka, alice, hour(1), 0, codes(R, 2))}},
		{"DayReadWhole", keyplane.ExportFilter{GroupBy: keyplane.GroupByKey, Granularity: keyplane.GranularityDay, Since: day(2), Until: hour(13).Add(time.Minute)},
			[]keyplane.UsageRow{key(kb, bob, day(2), 3, codes(V, 3))}},
		{"Empty", keyplane.ExportFilter{GroupBy: keyplane.GroupByKey, Granularity: keyplane.GranularityDay, Since: day(10), Until: day(20)},
			nil},
		{"FarPast", keyplane.ExportFilter{GroupBy: keyplane.GroupByKey, Granularity: keyplane.GranularityMonth, Since: time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), Until: month(7)},
			[]keyplane.UsageRow{
				key(ka, alice, month(6), 6, codes(V, 3, U, 1, R, 2)),
				key(kb, bob, month(6), 13, codes(V, 5)),
				key(kn, nil, month(6), 0, codes(V, 4)),
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []keyplane.UsageRow
			noErr(t, "ExportUsage", s.ExportUsage(ctx, w.ID, c.f, func(r *keyplane.UsageRow) error {
				got = append(got, *r)
				return nil
			}))
			equal(t, "export", got, sortKeys(c.want, ka, kb, kn))
		})
	}

	// fn's error stops the export and is returned.
	stop := errors.New("stop")
	calls := 0
	err := s.ExportUsage(ctx, w.ID, cases[0].f, func(*keyplane.UsageRow) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("ExportUsage with a failing fn: %v after %d calls", err, calls)
	}

	// Usage answers as before: the identity does not split a key's counts.
	buckets, err := s.Usage(ctx, w.ID, kb.ID, store.UsageFilter{Bucket: 24 * time.Hour, Since: day(1), Until: day(3)})
	noErr(t, "Usage", err)
	if len(buckets) != 2 || buckets[1].Total != 3 || buckets[1].Codes[V] != 3 || buckets[0].Total != 2 {
		t.Errorf("Usage of kb = %+v", buckets)
	}
}

// sortKeys puts rows of one period whose groups are keys in the order of their ids: the fixtures'
// keys are made in time order, but ids within a second are random after the millisecond.
func sortKeys(rows []keyplane.UsageRow, keys ...*keyplane.APIKey) []keyplane.UsageRow {
	out := append([]keyplane.UsageRow(nil), rows...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Start.Equal(out[j-1].Start) && out[j].KeyID != "" && out[j].KeyID < out[j-1].KeyID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
