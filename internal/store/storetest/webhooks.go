package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

func newWebhook(w *keyplane.Workspace, created time.Time, types ...string) *keyplane.WebhookEndpoint {
	if len(types) == 0 {
		types = []string{keyplane.AllEvents}
	}
	return &keyplane.WebhookEndpoint{
		ID: id.NewAt(id.Webhook, created), WorkspaceID: w.ID, URL: "https://hooks.example.com/keyplane",
		Description: "orders service", EventTypes: types, Enabled: true, Secret: []byte("sealed secret"),
		CreatedAt: created, UpdatedAt: created,
	}
}

func newDelivery(e *keyplane.WebhookEndpoint, created, due time.Time) *keyplane.Delivery {
	return &keyplane.Delivery{
		ID: id.NewAt(id.Delivery, created), WorkspaceID: e.WorkspaceID, EndpointID: e.ID,
		EventID: id.NewAt(id.Event, created), EventType: keyplane.EventAPIKeyCreated, Attempt: 1,
		Status: keyplane.DeliveryPending, CreatedAt: created, NextAttemptAt: &due,
	}
}

func insertWebhooks(t testing.TB, s store.Store, es ...*keyplane.WebhookEndpoint) {
	t.Helper()
	for _, e := range es {
		inTx(t, s, e.WorkspaceID, func(tx store.Tx) error { return tx.InsertWebhook(t.Context(), e) })
	}
}

func insertDeliveries(t testing.TB, s store.Store, ds ...*keyplane.Delivery) {
	t.Helper()
	for _, d := range ds {
		inTx(t, s, d.WorkspaceID, func(tx store.Tx) error { return tx.InsertDelivery(t.Context(), d) })
	}
}

func testWebhooks(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	full := newWebhook(w, at(time.Second), keyplane.EventAPIKeyCreated, "order.created")
	full.PreviousSecret, full.PreviousSecretUntil = []byte("old sealed"), ptr(at(time.Hour))
	in := *full
	in.CreatedAt, in.UpdatedAt = elsewhere(full.CreatedAt), elsewhere(full.UpdatedAt)
	in.PreviousSecretUntil = ptr(elsewhere(*full.PreviousSecretUntil))
	insertWebhooks(t, s, &in)
	got, err := s.GetWebhook(ctx, w.ID, full.ID)
	noErr(t, "GetWebhook", err)
	equal(t, "stored endpoint", got, full)

	_, err = s.GetWebhook(ctx, other.ID, full.ID)
	wantErr(t, "GetWebhook from another workspace", err, store.ErrNotFound)
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertWebhook(ctx, full) })
	wantErr(t, "InsertWebhook(taken id)", err, store.ErrConflict)

	// Update writes everything but its identity and health.
	up := *full
	up.URL, up.Description, up.EventTypes, up.Enabled, up.DisabledReason = "https://new.example.com/", "", []string{"*"}, false, "410 Gone"
	up.Secret, up.PreviousSecret, up.PreviousSecretUntil, up.UpdatedAt = []byte("new sealed"), nil, nil, at(time.Minute)
	up.CreatedAt, up.FailingSince = at(time.Hour), ptr(at(time.Hour))
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateWebhook(ctx, &up) })
	got, err = s.GetWebhook(ctx, w.ID, full.ID)
	noErr(t, "GetWebhook", err)
	want := up
	want.CreatedAt, want.FailingSince = full.CreatedAt, nil
	equal(t, "updated endpoint", got, &want)
	theirs := up
	theirs.WorkspaceID = other.ID
	err = s.InTx(ctx, other.ID, func(tx store.Tx) error { return tx.UpdateWebhook(ctx, &theirs) })
	wantErr(t, "UpdateWebhook from another workspace", err, store.ErrNotFound)

	// Subscriptions: enabled endpoints only, by type or by *.
	a := newWebhook(w, at(2*time.Second), keyplane.EventAPIKeyCreated)
	b := newWebhook(w, at(3*time.Second), "order.created", keyplane.EventAPIKeyRevoked)
	c := newWebhook(w, at(4*time.Second))
	off := newWebhook(w, at(5*time.Second))
	off.Enabled = false
	elsewhereHook := newWebhook(other, at(6*time.Second))
	insertWebhooks(t, s, a, b, c, off, elsewhereHook)
	ids := func(es []keyplane.WebhookEndpoint) []string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		{keyplane.EventAPIKeyCreated, []string{a.ID, c.ID}},
		{"order.created", []string{b.ID, c.ID}},
		{"nothing.here", []string{c.ID}},
	} {
		got, err := s.SubscribedWebhooks(ctx, w.ID, tc.typ)
		noErr(t, "SubscribedWebhooks", err)
		equal(t, "endpoints subscribed to "+tc.typ, ids(got), tc.want)
	}

	// Lists page newest first.
	var listed []string
	cursor := ""
	for {
		page, next, err := s.ListWebhooks(ctx, w.ID, 2, cursor)
		noErr(t, "ListWebhooks", err)
		listed = append(listed, ids(page)...)
		if next == "" {
			break
		}
		cursor = next
	}
	equal(t, "listed endpoints", listed, []string{off.ID, c.ID, b.ID, a.ID, full.ID})
	_, _, err = s.ListWebhooks(ctx, w.ID, 2, "garbage")
	wantErr(t, "ListWebhooks(bad cursor)", err, store.ErrBadCursor)

	// Deliveries: the log per endpoint, with a status filter; delete takes them along.
	d1 := newDelivery(a, at(time.Minute), at(time.Minute))
	d2 := newDelivery(a, at(2*time.Minute), at(2*time.Minute))
	d2.Status, d2.StatusCode, d2.ResponseBody, d2.DurationMs, d2.NextAttemptAt = keyplane.DeliverySucceeded, 204, "ok", ptr(int64(12)), nil
	d3 := newDelivery(b, at(3*time.Minute), at(3*time.Minute))
	d3.Manual, d3.Error = true, "connection refused"
	insertDeliveries(t, s, d1, d2, d3)
	gotD, err := s.GetDelivery(ctx, w.ID, a.ID, d2.ID)
	noErr(t, "GetDelivery", err)
	equal(t, "stored delivery", gotD, d2)
	gotD, err = s.GetDelivery(ctx, w.ID, b.ID, d3.ID)
	noErr(t, "GetDelivery", err)
	equal(t, "stored manual delivery", gotD, d3)
	_, err = s.GetDelivery(ctx, w.ID, b.ID, d1.ID)
	wantErr(t, "GetDelivery of another endpoint", err, store.ErrNotFound)
	_, err = s.GetDelivery(ctx, other.ID, a.ID, d1.ID)
	wantErr(t, "GetDelivery from another workspace", err, store.ErrNotFound)
	list, next, err := s.ListDeliveries(ctx, w.ID, a.ID, store.DeliveryFilter{Limit: 10})
	noErr(t, "ListDeliveries", err)
	if next != "" || len(list) != 2 || list[0].ID != d2.ID || list[1].ID != d1.ID {
		t.Errorf("deliveries of a: %v (next %q); want d2, d1", list, next)
	}
	list, _, err = s.ListDeliveries(ctx, w.ID, a.ID, store.DeliveryFilter{Status: keyplane.DeliveryPending, Limit: 10})
	noErr(t, "ListDeliveries", err)
	if len(list) != 1 || list[0].ID != d1.ID {
		t.Errorf("pending deliveries of a: %v; want d1", list)
	}
	list, next, err = s.ListDeliveries(ctx, w.ID, a.ID, store.DeliveryFilter{Limit: 1})
	noErr(t, "ListDeliveries", err)
	list2, next2, err := s.ListDeliveries(ctx, w.ID, a.ID, store.DeliveryFilter{Limit: 1, Cursor: next})
	noErr(t, "ListDeliveries", err)
	if len(list) != 1 || len(list2) != 1 || list[0].ID != d2.ID || list2[0].ID != d1.ID || next2 != "" {
		t.Errorf("paging deliveries: %v then %v (%q)", list, list2, next2)
	}
	list, _, err = s.ListDeliveries(ctx, other.ID, a.ID, store.DeliveryFilter{Limit: 10})
	noErr(t, "ListDeliveries", err)
	if len(list) != 0 {
		t.Errorf("another workspace lists %d of a's deliveries", len(list))
	}

	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.DeleteWebhook(ctx, w.ID, a.ID) })
	_, err = s.GetWebhook(ctx, w.ID, a.ID)
	wantErr(t, "GetWebhook after delete", err, store.ErrNotFound)
	_, err = s.GetDelivery(ctx, w.ID, a.ID, d1.ID)
	wantErr(t, "GetDelivery after its endpoint's delete", err, store.ErrNotFound)
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.DeleteWebhook(ctx, w.ID, a.ID) })
	wantErr(t, "DeleteWebhook again", err, store.ErrNotFound)
	err = s.InTx(ctx, other.ID, func(tx store.Tx) error { return tx.DeleteWebhook(ctx, other.ID, b.ID) })
	wantErr(t, "DeleteWebhook from another workspace", err, store.ErrNotFound)

	// GetEvent is per workspace.
	ev := &keyplane.Event{ID: id.NewAt(id.Event, at(0)), WorkspaceID: w.ID, Type: "order.created", Data: []byte(`{"n":1}`), CreatedAt: at(0)}
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.InsertEvent(ctx, ev) })
	gotE, err := s.GetEvent(ctx, w.ID, ev.ID)
	noErr(t, "GetEvent", err)
	equal(t, "event", gotE, ev)
	_, err = s.GetEvent(ctx, other.ID, ev.ID)
	wantErr(t, "GetEvent from another workspace", err, store.ErrNotFound)
}

func testClaimDeliveries(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	a, b := newWebhook(w, at(time.Second)), newWebhook(w, at(2*time.Second))
	off := newWebhook(w, at(3*time.Second))
	off.Enabled = false
	insertWebhooks(t, s, a, b, off)
	now := at(time.Hour)
	var due []*keyplane.Delivery
	for i := range 20 {
		e := a
		if i%2 == 1 {
			e = b
		}
		due = append(due, newDelivery(e, at(time.Duration(i)*time.Second), now.Add(-time.Duration(i)*time.Second)))
	}
	later := newDelivery(a, at(time.Minute), now.Add(time.Second))
	toOff := newDelivery(off, at(time.Minute+time.Second), now.Add(-time.Minute))
	done := newDelivery(a, at(time.Minute+2*time.Second), now.Add(-time.Minute))
	done.Status, done.NextAttemptAt = keyplane.DeliveryFailed, nil
	insertDeliveries(t, s, append(due, later, toOff, done)...)

	// Excluding b: a's ten due attempts, oldest due first.
	got, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), "c1", 100, []string{b.ID})
	noErr(t, "ClaimDeliveries", err)
	var gotIDs []string
	for _, d := range got {
		gotIDs = append(gotIDs, d.ID)
	}
	var wantIDs []string
	for i := 18; i >= 0; i -= 2 {
		wantIDs = append(wantIDs, due[i].ID)
	}
	equal(t, "claimed for a", gotIDs, wantIDs)

	// Concurrent claimers split b's ten without overlap.
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for {
				got, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), "w"+string(rune('0'+i)), 2, nil)
				if err != nil {
					t.Errorf("concurrent ClaimDeliveries: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 10 {
		t.Errorf("concurrent claimers took %d attempts, want b's 10", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("attempt %s claimed %d times", id, n)
		}
	}

	// A lease that ended is taken again; the old holder can no longer finish.
	again, err := s.ClaimDeliveries(ctx, now.Add(2*time.Minute), now.Add(3*time.Minute), "c2", 1, nil)
	noErr(t, "ClaimDeliveries after the lease", err)
	if len(again) != 1 {
		t.Fatalf("after the leases ended, %d attempts claimable, want 1 (of 21)", len(again))
	}
	d := again[0]
	d.Status, d.StatusCode, d.DurationMs = keyplane.DeliverySucceeded, 200, ptr(int64(5))
	_, err = s.FinishDelivery(ctx, &d, "c1", now, nil)
	wantErr(t, "FinishDelivery by an old lease holder", err, store.ErrNotFound)
	failing, err := s.FinishDelivery(ctx, &d, "c2", now, nil)
	noErr(t, "FinishDelivery", err)
	if failing != nil {
		t.Errorf("after a success the endpoint is failing since %v", failing)
	}
	stored, err := s.GetDelivery(ctx, w.ID, d.EndpointID, d.ID)
	noErr(t, "GetDelivery", err)
	if stored.Status != keyplane.DeliverySucceeded || stored.StatusCode != 200 || stored.NextAttemptAt != nil || *stored.DurationMs != 5 {
		t.Errorf("finished attempt stored as %+v", stored)
	}
	_, err = s.FinishDelivery(ctx, &d, "c2", now, nil)
	wantErr(t, "FinishDelivery twice", err, store.ErrNotFound)
}

func testFinishDelivery(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	e := newWebhook(w, at(time.Second))
	insertWebhooks(t, s, e)
	now := at(time.Hour)
	claimOne := func(claim string) keyplane.Delivery {
		t.Helper()
		got, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), claim, 1, nil)
		noErr(t, "ClaimDeliveries", err)
		if len(got) != 1 {
			t.Fatalf("claimed %d attempts, want 1", len(got))
		}
		return got[0]
	}
	first := newDelivery(e, at(time.Minute), now)
	insertDeliveries(t, s, first)

	// A failure sets FailingSince and schedules the retry in the same transaction.
	d := claimOne("c")
	d.Status, d.StatusCode, d.ResponseBody, d.Error, d.DurationMs = keyplane.DeliveryFailed, 503, "busy", "503 Service Unavailable", ptr(int64(30))
	next := newDelivery(e, now, now.Add(5*time.Second))
	next.Attempt, next.EventID = 2, d.EventID
	failing, err := s.FinishDelivery(ctx, &d, "c", now, next)
	noErr(t, "FinishDelivery", err)
	if failing == nil || !failing.Equal(now) {
		t.Errorf("after a failure FailingSince = %v, want %v", failing, now)
	}
	if _, err := s.GetDelivery(ctx, w.ID, e.ID, next.ID); err != nil {
		t.Errorf("the retry was not scheduled: %v", err)
	}
	// A second failure keeps the first failure's time; nothing is claimable before the retry is due.
	none, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), "c", 10, nil)
	noErr(t, "ClaimDeliveries", err)
	if len(none) != 0 {
		t.Errorf("%d attempts claimable before the retry is due", len(none))
	}
	now = now.Add(5 * time.Second)
	d = claimOne("c2")
	if d.ID != next.ID || d.Attempt != 2 {
		t.Fatalf("claimed %s (attempt %d), want the retry", d.ID, d.Attempt)
	}
	d.Status, d.Error = keyplane.DeliveryFailed, "timed out"
	failing, err = s.FinishDelivery(ctx, &d, "c2", now, nil)
	noErr(t, "FinishDelivery", err)
	if failing == nil || !failing.Equal(now.Add(-5*time.Second)) {
		t.Errorf("after a second failure FailingSince = %v, want the first failure's time", failing)
	}
	// A manual attempt does not move the endpoint's health.
	manual := newDelivery(e, now, now)
	manual.Manual = true
	insertDeliveries(t, s, manual)
	d = claimOne("c3")
	d.Status = keyplane.DeliverySucceeded
	failing, err = s.FinishDelivery(ctx, &d, "c3", now, nil)
	noErr(t, "FinishDelivery", err)
	if failing == nil {
		t.Error("a manual success cleared FailingSince")
	}

	// FailPendingDeliveries ends pending attempts, leased ones too, and leaves the rest.
	p1, p2 := newDelivery(e, now, now), newDelivery(e, now.Add(time.Millisecond), now.Add(time.Hour))
	insertDeliveries(t, s, p1, p2)
	claimOne("c4") // p1 leased
	var n int64
	inTx(t, s, w.ID, func(tx store.Tx) error {
		var err error
		n, err = tx.FailPendingDeliveries(ctx, e.ID, "endpoint disabled")
		return err
	})
	if n != 2 {
		t.Errorf("FailPendingDeliveries ended %d attempts, want 2", n)
	}
	for _, p := range []*keyplane.Delivery{p1, p2} {
		got, err := s.GetDelivery(ctx, w.ID, e.ID, p.ID)
		noErr(t, "GetDelivery", err)
		if got.Status != keyplane.DeliveryFailed || got.Error != "endpoint disabled" || got.NextAttemptAt != nil {
			t.Errorf("after FailPendingDeliveries: %+v", got)
		}
	}
	all, _, err := s.ListDeliveries(ctx, w.ID, e.ID, store.DeliveryFilter{Status: keyplane.DeliverySucceeded, Limit: 10})
	noErr(t, "ListDeliveries", err)
	if len(all) != 1 || !slices.ContainsFunc(all, func(x keyplane.Delivery) bool { return x.ID == manual.ID }) {
		t.Errorf("succeeded attempts: %v; want the manual one", all)
	}
}

func testKeyNotices(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	exp := func(d time.Duration) func(*keyplane.APIKey) {
		return func(k *keyplane.APIKey) { k.ExpiresAt = ptr(at(d)) }
	}
	a := newKey(w, at(time.Second), exp(2*time.Hour))
	b := newKey(other, at(2*time.Second), exp(3*time.Hour))
	c := newKey(w, at(3*time.Second), exp(10*time.Hour)) // outside the window
	never := newKey(w, at(4*time.Second))
	revoked := newKey(w, at(5*time.Second), exp(time.Hour), func(k *keyplane.APIKey) { k.RevokedAt = ptr(at(time.Minute)) })
	insertKeys(t, s, a, b, c, never, revoked)
	ids := func(ks []keyplane.APIKey) []string {
		out := []string{}
		for _, k := range ks {
			out = append(out, k.ID)
		}
		return out
	}
	got, err := s.KeysToNotify(ctx, "api_key.expiring", at(0), at(5*time.Hour), 10)
	noErr(t, "KeysToNotify", err)
	equal(t, "keys to notify, every workspace, soonest first", ids(got), []string{a.ID, b.ID})
	got, err = s.KeysToNotify(ctx, "api_key.expiring", at(0), at(5*time.Hour), 1)
	noErr(t, "KeysToNotify", err)
	equal(t, "keys to notify, limited", ids(got), []string{a.ID})

	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.InsertKeyNotice(ctx, a.ID, "api_key.expiring", *a.ExpiresAt) })
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertKeyNotice(ctx, a.ID, "api_key.expiring", *a.ExpiresAt) })
	wantErr(t, "InsertKeyNotice twice", err, store.ErrConflict)
	got, err = s.KeysToNotify(ctx, "api_key.expiring", at(0), at(5*time.Hour), 10)
	noErr(t, "KeysToNotify", err)
	equal(t, "keys to notify after a's notice", ids(got), []string{b.ID})
	// Another kind, or another expiry of the same key, is another notice.
	got, err = s.KeysToNotify(ctx, "api_key.expired", at(0), at(5*time.Hour), 10)
	noErr(t, "KeysToNotify", err)
	equal(t, "keys to notify of another kind", ids(got), []string{a.ID, b.ID})
	moved := *a
	moved.ExpiresAt, moved.UpdatedAt = ptr(at(4*time.Hour)), at(time.Hour)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &moved) })
	got, err = s.KeysToNotify(ctx, "api_key.expiring", at(0), at(5*time.Hour), 10)
	noErr(t, "KeysToNotify", err)
	equal(t, "keys to notify after a's expiry moved", ids(got), []string{b.ID, a.ID})
	// Deleting a key deletes its notices: the same id and expiry would be notified afresh.
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.InsertKeyNotice(ctx, c.ID, "api_key.expiring", *c.ExpiresAt) })
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.DeleteAPIKey(ctx, w.ID, c.ID) })
	insertKeys(t, s, c)
	got, err = s.KeysToNotify(ctx, "api_key.expiring", at(9*time.Hour), at(11*time.Hour), 10)
	noErr(t, "KeysToNotify", err)
	equal(t, "keys to notify after delete and re-insert", ids(got), []string{c.ID})
}
