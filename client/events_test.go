package client_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestEventsAndRecovery walks the events list, an event's detail, a resend and a recovery against a
// real receiver.
func TestEventsAndRecovery(t *testing.T) {
	ctx := context.Background()
	w, _ := newWorkspace(t, "events")
	h := newHook(t)
	wh, err := w.CreateWebhook(ctx, client.CreateWebhookRequest{URL: h.URL + "/hook", EventTypes: []string{"order.created"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	var sent []string
	for i := range 3 {
		ev, err := w.SendEvent(ctx, client.SendEventRequest{Type: "order.created", Data: json.RawMessage(`{"orderId":` + string(rune('1'+i)) + `}`)})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, ev.ID)
	}
	testkit.Eventually(t, 15*time.Second, "the events delivered", func() bool {
		ids := h.ids()
		return slices.Contains(ids, sent[0]) && slices.Contains(ids, sent[1]) && slices.Contains(ids, sent[2])
	})

	// The iterator pages through every event, newest first.
	var listed []string
	for ev, err := range w.AllEvents(ctx, client.ListEventsParams{Type: "order.created", Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		if string(ev.Data) == "null" || ev.PayloadDropped || ev.DataHidden {
			t.Errorf("listed event: %+v", ev)
		}
		listed = append(listed, ev.ID)
	}
	if want := []string{sent[2], sent[1], sent[0]}; !slices.Equal(listed, want) {
		t.Errorf("listed %v, want %v", listed, want)
	}
	page, err := w.ListEvents(ctx, client.ListEventsParams{Since: start, Until: time.Now().Add(time.Minute), Limit: 100})
	if err != nil || len(page.Items) != 3 {
		t.Fatalf("list in a window: %+v, %v", page, err)
	}

	testkit.Eventually(t, 15*time.Second, "the first event's attempt recorded", func() bool {
		ev, err := w.GetEvent(ctx, sent[0])
		return err == nil && len(ev.Endpoints) == 1 && ev.Endpoints[0].Status == client.DeliverySucceeded
	})
	ev, err := w.GetEvent(ctx, sent[0])
	if err != nil || ev.Endpoints[0].EndpointID != wh.ID || ev.Endpoints[0].Attempts != 1 {
		t.Fatalf("get event: %+v, %v", ev, err)
	}

	// A resend to the endpoint arrives under the event's own webhook-id.
	before := len(h.ids())
	q, err := w.ResendEvent(ctx, sent[0], wh.ID)
	if err != nil || q.Queued != 1 {
		t.Fatalf("resend: %+v, %v", q, err)
	}
	testkit.Eventually(t, 15*time.Second, "the resend delivered", func() bool {
		ids := h.ids()
		return len(ids) > before && slices.Contains(ids[before:], sent[0])
	})
	q, err = w.ResendEvent(ctx, sent[1], "")
	if err != nil || q.Queued != 1 {
		t.Fatalf("resend to all: %+v, %v", q, err)
	}

	// Everything succeeded: a recovery has nothing to send.
	testkit.Eventually(t, 15*time.Second, "the resends made", func() bool {
		ev, err := w.GetEvent(ctx, sent[1])
		return err == nil && len(ev.Endpoints) == 1 && ev.Endpoints[0].Attempts == 2 && ev.Endpoints[0].Status == client.DeliverySucceeded
	})
	q, err = w.RecoverWebhook(ctx, wh.ID, client.RecoverWebhookRequest{Since: start})
	if err != nil || q.Queued != 0 {
		t.Fatalf("recover: %+v, %v", q, err)
	}
	_, err = w.RecoverWebhook(ctx, wh.ID, client.RecoverWebhookRequest{Since: time.Now().Add(-31 * 24 * time.Hour)})
	if e := apiError(t, err); e.StatusCode != 400 || e.Code != client.CodeInvalidRequest {
		t.Errorf("recover past the retention: %v", e)
	}
	_, err = w.ResendEvent(ctx, "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV", "")
	if e := apiError(t, err); e.StatusCode != 404 || e.Code != client.CodeNotFound {
		t.Errorf("resend of an unknown event: %v", e)
	}
}
