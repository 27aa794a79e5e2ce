package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// newEvent is an event of w whose id and creation time are created, as the service makes them.
func newEvent(w *keyplane.Workspace, created time.Time, typ string) *keyplane.Event {
	return &keyplane.Event{ID: id.NewAt(id.Event, created), WorkspaceID: w.ID, Type: typ,
		Data: json.RawMessage(`{"n":"` + created.Format(time.RFC3339Nano) + `"}`), CreatedAt: created}
}

func insertEvents(t testing.TB, s store.Store, es ...*keyplane.Event) {
	t.Helper()
	for _, e := range es {
		inTx(t, s, e.WorkspaceID, func(tx store.Tx) error { return tx.InsertEvent(t.Context(), e) })
	}
}

// attemptOf is an attempt of ev to e, made at created, with status st.
func attemptOf(e *keyplane.WebhookEndpoint, ev *keyplane.Event, created time.Time, st keyplane.DeliveryStatus) *keyplane.Delivery {
	d := &keyplane.Delivery{ID: id.NewAt(id.Delivery, created), WorkspaceID: e.WorkspaceID, EndpointID: e.ID, EventID: ev.ID,
		EventType: ev.Type, Attempt: 1, Status: st, CreatedAt: created}
	if st == keyplane.DeliveryPending {
		d.NextAttemptAt = &created
	}
	return d
}

func eventIDs(es []keyplane.Event) []string {
	return ids(es, func(e *keyplane.Event) string { return e.ID })
}

func testListEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	var evs []*keyplane.Event
	for i := range 5 {
		typ := "order.created"
		if i%2 == 1 {
			typ = "order.paid"
		}
		evs = append(evs, newEvent(w, at(time.Duration(i)*time.Minute), typ))
	}
	insertEvents(t, s, evs...)
	insertEvents(t, s, newEvent(other, at(2*time.Minute), "order.created"))

	all, next, err := s.ListEvents(ctx, w.ID, store.EventFilter{Limit: 10})
	noErr(t, "ListEvents", err)
	equal(t, "events newest first", eventIDs(all), []string{evs[4].ID, evs[3].ID, evs[2].ID, evs[1].ID, evs[0].ID})
	if next != "" {
		t.Errorf("a full list has a next cursor %q", next)
	}
	equal(t, "a listed event", &all[0], evs[4])

	page1, next, err := s.ListEvents(ctx, w.ID, store.EventFilter{Limit: 2})
	noErr(t, "ListEvents page 1", err)
	page2, next2, err := s.ListEvents(ctx, w.ID, store.EventFilter{Limit: 2, Cursor: next})
	noErr(t, "ListEvents page 2", err)
	equal(t, "pages", append(eventIDs(page1), eventIDs(page2)...), []string{evs[4].ID, evs[3].ID, evs[2].ID, evs[1].ID})
	if next2 == "" {
		t.Error("page 2 of 3 has no next cursor")
	}

	since, until := at(time.Minute), at(3*time.Minute)
	got, _, err := s.ListEvents(ctx, w.ID, store.EventFilter{Since: &since, Until: &until, Limit: 10})
	noErr(t, "ListEvents window", err)
	equal(t, "events in [1m, 3m)", eventIDs(got), []string{evs[2].ID, evs[1].ID})
	got, _, err = s.ListEvents(ctx, w.ID, store.EventFilter{Type: "order.paid", Limit: 10})
	noErr(t, "ListEvents type", err)
	equal(t, "order.paid events", eventIDs(got), []string{evs[3].ID, evs[1].ID})

	_, _, err = s.ListEvents(ctx, w.ID, store.EventFilter{Limit: 10, Cursor: "bogus"})
	wantErr(t, "ListEvents(bad cursor)", err, store.ErrBadCursor)
	// A cursor of another list is refused, not read as an event id.
	insertWebhooks(t, s, newWebhook(w, at(time.Second)), newWebhook(w, at(2*time.Second)))
	_, hcur, err := s.ListWebhooks(ctx, w.ID, 1, "")
	noErr(t, "ListWebhooks", err)
	if hcur == "" {
		t.Fatal("no cursor from a page of one of two endpoints")
	}
	_, _, err = s.ListEvents(ctx, w.ID, store.EventFilter{Limit: 10, Cursor: hcur})
	wantErr(t, "ListEvents(an endpoints cursor)", err, store.ErrBadCursor)
	// Another workspace's events are not listed, whatever the filter.
	got, _, err = s.ListEvents(ctx, other.ID, store.EventFilter{Type: "order.paid", Limit: 10})
	noErr(t, "ListEvents other workspace", err)
	if len(got) != 0 {
		t.Errorf("the other workspace lists %d order.paid events", len(got))
	}
}

func testFailedDeliveries(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	e, e2 := newWebhook(w, at(time.Second)), newWebhook(w, at(2*time.Second))
	oe := newWebhook(other, at(time.Second))
	insertWebhooks(t, s, e, e2, oe)

	ev := func(min int) *keyplane.Event { return newEvent(w, at(time.Duration(min)*time.Minute), "order.created") }
	failedOnce, failedTwice, retried, succeededLater, pending, outside, otherEP, manualPending := ev(10), ev(11), ev(12), ev(13), ev(14), ev(30), ev(15), ev(16)
	insertEvents(t, s, failedOnce, failedTwice, retried, succeededLater, pending, outside, otherEP, manualPending)
	oev := newEvent(other, at(11*time.Minute), "order.created")
	insertEvents(t, s, oev)
	later := func(ev *keyplane.Event, n int) time.Time { return ev.CreatedAt.Add(time.Duration(n) * time.Second) }
	d1 := attemptOf(e, failedOnce, later(failedOnce, 1), keyplane.DeliveryFailed)
	d2a := attemptOf(e, failedTwice, later(failedTwice, 1), keyplane.DeliveryFailed)
	d2b := attemptOf(e, failedTwice, later(failedTwice, 2), keyplane.DeliveryFailed)
	d2b.Attempt = 2
	insertDeliveries(t, s, d1, d2a, d2b,
		attemptOf(e, retried, later(retried, 1), keyplane.DeliveryFailed),
		attemptOf(e, retried, later(retried, 2), keyplane.DeliveryPending), // scheduled retry
		attemptOf(e, succeededLater, later(succeededLater, 1), keyplane.DeliveryFailed),
		attemptOf(e, succeededLater, later(succeededLater, 2), keyplane.DeliverySucceeded),
		attemptOf(e, pending, later(pending, 1), keyplane.DeliveryPending),
		attemptOf(e, outside, later(outside, 1), keyplane.DeliveryFailed),
		attemptOf(e2, otherEP, later(otherEP, 1), keyplane.DeliveryFailed),
		// A manual attempt queued before a later one failed: still under way.
		attemptOf(e, manualPending, later(manualPending, 1), keyplane.DeliveryPending),
		attemptOf(e, manualPending, later(manualPending, 2), keyplane.DeliveryFailed),
		attemptOf(oe, oev, later(oev, 1), keyplane.DeliveryFailed),
	)

	since, until := at(10*time.Minute), at(20*time.Minute)
	got, err := s.FailedDeliveries(ctx, w.ID, e.ID, since, until, "", 100)
	noErr(t, "FailedDeliveries", err)
	equal(t, "the last failed attempt of each failed event", ids(got, func(d *keyplane.Delivery) string { return d.ID }), []string{d1.ID, d2b.ID})
	equal(t, "a failed attempt", &got[1], d2b)

	// Paging by event id.
	got, err = s.FailedDeliveries(ctx, w.ID, e.ID, since, until, "", 1)
	noErr(t, "FailedDeliveries limit 1", err)
	equal(t, "first page", ids(got, func(d *keyplane.Delivery) string { return d.ID }), []string{d1.ID})
	got, err = s.FailedDeliveries(ctx, w.ID, e.ID, since, until, failedOnce.ID, 1)
	noErr(t, "FailedDeliveries after", err)
	equal(t, "second page", ids(got, func(d *keyplane.Delivery) string { return d.ID }), []string{d2b.ID})

	// The other workspace's endpoint is not reached through this workspace, nor the reverse.
	got, err = s.FailedDeliveries(ctx, w.ID, oe.ID, since, until, "", 100)
	noErr(t, "FailedDeliveries other endpoint", err)
	if len(got) != 0 {
		t.Errorf("another workspace's endpoint gave %d attempts", len(got))
	}
	got, err = s.FailedDeliveries(ctx, other.ID, e.ID, since, until, "", 100)
	noErr(t, "FailedDeliveries other workspace", err)
	if len(got) != 0 {
		t.Errorf("an endpoint read through another workspace gave %d attempts", len(got))
	}

	// EventDeliveries: every attempt of the event, oldest first, in its workspace only.
	all, err := s.EventDeliveries(ctx, w.ID, failedTwice.ID)
	noErr(t, "EventDeliveries", err)
	equal(t, "an event's attempts", ids(all, func(d *keyplane.Delivery) string { return d.ID }), []string{d2a.ID, d2b.ID})
	all, err = s.EventDeliveries(ctx, other.ID, failedTwice.ID)
	noErr(t, "EventDeliveries other workspace", err)
	if len(all) != 0 {
		t.Errorf("another workspace sees %d attempts of the event", len(all))
	}

	// A dropped payload is not recovered.
	n, err := s.DropEventPayloads(ctx, at(11*time.Minute), 100)
	noErr(t, "DropEventPayloads", err)
	if n != 1 {
		t.Errorf("dropped %d payloads, want 1 (failedOnce)", n)
	}
	got, err = s.FailedDeliveries(ctx, w.ID, e.ID, since, until, "", 100)
	noErr(t, "FailedDeliveries after drop", err)
	equal(t, "failed attempts after the drop", ids(got, func(d *keyplane.Delivery) string { return d.ID }), []string{d2b.ID})
}

func testDropEventPayloads(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	e := newWebhook(w, at(time.Second))
	insertWebhooks(t, s, e)
	old1, old2, oldPending, fresh := newEvent(w, at(time.Minute), "a"), newEvent(other, at(2*time.Minute), "a"),
		newEvent(w, at(3*time.Minute), "a"), newEvent(w, at(time.Hour), "a")
	insertEvents(t, s, old1, old2, oldPending, fresh)
	insertDeliveries(t, s, attemptOf(e, old1, at(2*time.Minute), keyplane.DeliveryFailed),
		attemptOf(e, oldPending, at(4*time.Minute), keyplane.DeliveryPending))

	n, err := s.DropEventPayloads(ctx, at(30*time.Minute), 1)
	noErr(t, "DropEventPayloads", err)
	if n != 1 {
		t.Fatalf("dropped %d payloads with limit 1", n)
	}
	n, err = s.DropEventPayloads(ctx, at(30*time.Minute), 100)
	noErr(t, "DropEventPayloads", err)
	if n != 1 {
		t.Errorf("second batch dropped %d payloads, want 1 (the pending event keeps its payload)", n)
	}
	n, err = s.DropEventPayloads(ctx, at(30*time.Minute), 100)
	noErr(t, "DropEventPayloads again", err)
	if n != 0 {
		t.Errorf("a third batch dropped %d payloads: dropping is not idempotent", n)
	}
	for _, c := range []struct {
		ev      *keyplane.Event
		dropped bool
	}{{old1, true}, {old2, true}, {oldPending, false}, {fresh, false}} {
		got, err := s.GetEvent(ctx, c.ev.WorkspaceID, c.ev.ID)
		noErr(t, "GetEvent", err)
		if got.PayloadDropped != c.dropped || (got.Data == nil) != c.dropped {
			t.Errorf("event at %s: dropped %v, data %q; want dropped %v", c.ev.CreatedAt, got.PayloadDropped, got.Data, c.dropped)
		}
		if got.Type != c.ev.Type || !got.CreatedAt.Equal(c.ev.CreatedAt) {
			t.Errorf("a dropped event lost its row: %+v", got)
		}
	}
	// The list shows dropped events, without data; the attempts stay.
	list, _, err := s.ListEvents(ctx, w.ID, store.EventFilter{Limit: 10})
	noErr(t, "ListEvents", err)
	if len(list) != 3 || !list[2].PayloadDropped || list[2].Data != nil {
		t.Errorf("listed after the drop: %+v", list)
	}
	attempts, err := s.EventDeliveries(ctx, w.ID, old1.ID)
	noErr(t, "EventDeliveries", err)
	if len(attempts) != 1 {
		t.Errorf("a dropped event's attempts: %d, want 1", len(attempts))
	}
	_, err = s.DropEventPayloads(ctx, at(time.Hour), 0)
	if err == nil {
		t.Error("DropEventPayloads with limit 0 did not fail")
	}
}
