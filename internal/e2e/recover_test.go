package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/sqlite"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestWebhookRecovery runs the recovery through the real program and its delivery workers: a
// receiver that was down gets, once it is back and the endpoint is recovered, each event it missed
// exactly once, signed, under the event's webhook-id; a healthy endpoint of the same events gets
// nothing again; recovering twice sends nothing twice; nasty requests are refused with 4xx, never
// a 500.
func TestWebhookRecovery(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		n := start(t, driver, webhookEnv)
		ws := n.workspace("recovery", nil)
		var down atomic.Bool
		down.Store(true)
		rcA := newReceiver(t, func(_ int, w http.ResponseWriter) {
			if down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		rcB := newReceiver(t, nil)
		a := n.webhook(ws, map[string]any{"url": rcA.URL + "/a", "eventTypes": []string{"order.created"}})
		b := n.webhook(ws, map[string]any{"url": rcB.URL + "/b", "eventTypes": []string{"order.created"}})
		aID, secretA := a["id"].(string), a["secret"].(string)
		since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
		var events []string
		for i := range 3 {
			ev := n.must(202, req{method: "POST", path: "/v1/events", cred: n.admin, ws: ws, body: map[string]any{"type": "order.created", "data": map[string]any{"order": i}}})
			events = append(events, ev.data()["id"].(string))
		}
		settled := func(hook string, failed, succeeded int) func() bool {
			return func() bool {
				f, s := 0, 0
				for _, d := range n.deliveries(ws, hook, "?limit=100") {
					switch d["status"] {
					case "pending":
						return false
					case "failed":
						f++
					case "succeeded":
						s++
					}
				}
				return f == failed && s == succeeded
			}
		}
		testkit.Eventually(t, 20*time.Second, "A's 9 attempts failed for good", settled(aID, 9, 0))
		testkit.Eventually(t, 20*time.Second, "B's 3 deliveries", settled(b["id"].(string), 0, 3))
		before, beforeB := len(rcA.requests()), len(rcB.requests())
		down.Store(false)

		path := "/v1/webhooks/" + aID + "/recover"
		res := n.must(202, req{method: "POST", path: path, cred: n.admin, ws: ws, body: map[string]any{"since": since}})
		if q := res.data()["queued"]; q != float64(3) {
			t.Fatalf("recover: queued %v, want 3", q)
		}
		res = n.must(202, req{method: "POST", path: path, cred: n.admin, ws: ws, body: map[string]any{"since": since}})
		if q := res.data()["queued"]; q != float64(0) {
			t.Errorf("a second recovery queued %v, want 0", q)
		}
		testkit.Eventually(t, 20*time.Second, "the recovered attempts made", settled(aID, 9, 3))
		got := rcA.requests()[before:]
		if len(got) != 3 {
			t.Fatalf("the receiver got %d recovered deliveries, want 3", len(got))
		}
		var ids []string
		for _, r := range got {
			d := decodeDelivery(t, r)
			if r.header.Get("webhook-id") != d.ID {
				t.Errorf("webhook-id %s for event %s", r.header.Get("webhook-id"), d.ID)
			}
			if _, err := verifySignature(r.header, r.body, secretA); err != nil {
				t.Errorf("a recovered delivery's signature: %v", err)
			}
			ids = append(ids, d.ID)
		}
		slices.Sort(ids)
		if want := slices.Sorted(slices.Values(events)); !slices.Equal(ids, want) {
			t.Errorf("recovered %v, want %v once each", ids, want)
		}
		if len(rcB.requests()) != beforeB {
			t.Errorf("the healthy endpoint got %d deliveries again", len(rcB.requests())-beforeB)
		}
		// Recovered and delivered: a third recovery finds nothing.
		res = n.must(202, req{method: "POST", path: path, cred: n.admin, ws: ws, body: map[string]any{"since": since}})
		if q := res.data()["queued"]; q != float64(0) {
			t.Errorf("a recovery after success queued %v", q)
		}

		// The events list and one event, with what became of it.
		list := n.must(200, req{method: "GET", path: "/v1/events?type=order.created&limit=2", cred: n.admin, ws: ws})
		if items := list.list(); len(items) != 2 || items[0].(map[string]any)["id"] != events[2] || list.Body["nextCursor"] == nil {
			t.Errorf("events page: %.400s", list.Raw)
		}
		one := n.must(200, req{method: "GET", path: "/v1/events/" + events[0], cred: n.admin, ws: ws}).data()
		if eps, _ := one["endpoints"].([]any); len(eps) != 2 || one["payloadDropped"] != false || one["data"].(map[string]any)["order"] != float64(0) {
			t.Errorf("an event: %v", one)
		}

		// Nasty requests: 4xx with the field named, never a 500 and nothing queued.
		old := time.Now().Add(-40 * 24 * time.Hour).UTC().Format(time.RFC3339)
		for _, c := range []struct {
			name   string
			r      req
			status int
			code   string
		}{
			{"no since", req{body: map[string]any{}}, 400, "invalid_request"},
			{"since not a time", req{body: map[string]any{"since": "yesterday 9:00"}}, 400, "invalid_request"},
			{"since a number", req{body: map[string]any{"since": 1733300000}}, 400, "invalid_request"},
			{"since null", req{body: map[string]any{"since": nil}}, 400, "invalid_request"},
			{"until before since", req{body: map[string]any{"since": since, "until": "2000-01-01T00:00:00Z"}}, 400, "invalid_request"},
			{"since past the retention", req{body: map[string]any{"since": old}}, 400, "invalid_request"},
			{"since in the future", req{body: map[string]any{"since": "2999-01-01T00:00:00Z"}}, 400, "invalid_request"},
			{"unknown field", req{body: map[string]any{"since": since, "endpoint": aID}}, 400, "invalid_request"},
			{"not JSON", req{body: "{since"}, 400, "invalid_request"},
			{"no body", req{}, 400, "invalid_request"},
			{"text body", req{body: "since=now", ctype: "text/plain"}, 415, "unsupported_media_type"},
			{"unknown endpoint", req{path: "/v1/webhooks/whk_01ARZ3NDEKTSV4RRFFQ69G5FAV/recover", body: map[string]any{"since": since}}, 404, "not_found"},
			{"malformed endpoint", req{path: "/v1/webhooks/whk_%00'--/recover", body: map[string]any{"since": since}}, 404, "not_found"},
			{"events: since not a time", req{method: "GET", path: "/v1/events?since=monday"}, 400, "invalid_request"},
			{"events: until before since", req{method: "GET", path: "/v1/events?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z"}, 400, "invalid_request"},
			{"events: foreign cursor", req{method: "GET", path: "/v1/events?cursor=aGVsbG8"}, 400, "invalid_request"},
			{"events: limit 0", req{method: "GET", path: "/v1/events?limit=0"}, 400, "invalid_request"},
			{"event: unknown", req{method: "GET", path: "/v1/events/evt_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, 404, "not_found"},
			{"resend: unknown event", req{path: "/v1/events/evt_01ARZ3NDEKTSV4RRFFQ69G5FAV/resend"}, 404, "not_found"},
			{"resend: endpointId a number", req{path: "/v1/events/" + events[0] + "/resend", body: map[string]any{"endpointId": 7}}, 400, "invalid_request"},
			{"resend: unknown endpoint", req{path: "/v1/events/" + events[0] + "/resend", body: map[string]any{"endpointId": "whk_01ARZ3NDEKTSV4RRFFQ69G5FAV"}}, 404, "not_found"},
			{"resend: endpoint not a webhook id", req{path: "/v1/events/" + events[0] + "/resend", body: map[string]any{"endpointId": events[1]}}, 404, "not_found"},
		} {
			r := c.r
			if r.method == "" {
				r.method = "POST"
			}
			if r.path == "" {
				r.path = path
			}
			r.cred, r.ws = n.admin, ws
			res := n.do(r)
			if res.Status != c.status || res.errCode() != c.code {
				t.Errorf("%s: %d %q, want %d %q: %.300s", c.name, res.Status, res.errCode(), c.status, c.code, res.Raw)
			}
		}
		if got := len(n.deliveries(ws, aID, "?limit=100")); got != 12 {
			t.Errorf("after the refused requests A has %d attempts, want 12", got)
		}
	})
}

// TestEventRetention: serve's retention job drops the payloads of events older than
// --event-retention (the events and their attempts stay listed), and such an event can no longer be
// sent: a resend or retry answers 410 event_payload_dropped, a recovery reaching back to it 400.
func TestEventRetention(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		env := map[string]string{"KEYPLANE_EVENT_RETENTION": "1h"}
		for k, v := range webhookEnv {
			env[k] = v
		}
		n := start(t, driver, env)
		ws := n.workspace("retention", nil)
		rc := newReceiver(t, nil)
		hook := n.webhook(ws, map[string]any{"url": rc.URL + "/r", "eventTypes": []string{"order.created"}})
		hookID := hook["id"].(string)
		fresh := n.must(202, req{method: "POST", path: "/v1/events", cred: n.admin, ws: ws, body: map[string]any{"type": "order.created", "data": map[string]any{"order": "fresh"}}}).data()["id"].(string)
		rc.waitFor(t, 1)

		// An event of two hours ago, whose one attempt failed, written while serve is stopped; serve's
		// retention job runs as it starts.
		n.stop()
		n.stop = nil
		at := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Microsecond)
		old := &keyplane.Event{ID: id.NewAt(id.Event, at), WorkspaceID: ws, Type: "order.created", Data: json.RawMessage(`{"order":"old"}`), CreatedAt: at}
		failed := &keyplane.Delivery{ID: id.NewAt(id.Delivery, at), WorkspaceID: ws, EndpointID: hookID, EventID: old.ID, EventType: old.Type,
			Attempt: 1, Status: keyplane.DeliveryFailed, StatusCode: 503, Error: "down", CreatedAt: at}
		st := attachStore(t, n.dataDir, n.dbURL)
		if err := st.InTx(context.Background(), ws, func(tx store.Tx) error {
			if err := tx.InsertEvent(context.Background(), old); err != nil {
				return err
			}
			return tx.InsertDelivery(context.Background(), failed)
		}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		n.serve(env)

		testkit.Eventually(t, 15*time.Second, "the old event's payload dropped", func() bool {
			return n.must(200, req{method: "GET", path: "/v1/events/" + old.ID, cred: n.admin, ws: ws}).data()["payloadDropped"] == true
		})
		ev := n.must(200, req{method: "GET", path: "/v1/events/" + old.ID, cred: n.admin, ws: ws}).data()
		if ev["data"] != nil || ev["type"] != "order.created" {
			t.Errorf("a dropped event: %v", ev)
		}
		if eps, _ := ev["endpoints"].([]any); len(eps) != 1 {
			t.Errorf("a dropped event's attempts: %v", ev["endpoints"])
		}
		if f := n.must(200, req{method: "GET", path: "/v1/events/" + fresh, cred: n.admin, ws: ws}).data(); f["payloadDropped"] != false || f["data"] == nil {
			t.Errorf("a fresh event: %v", f)
		}
		n.fails(410, "event_payload_dropped", req{method: "POST", path: "/v1/events/" + old.ID + "/resend", cred: n.admin, ws: ws})
		n.fails(410, "event_payload_dropped", req{method: "POST", path: "/v1/events/" + old.ID + "/resend", cred: n.admin, ws: ws, body: map[string]any{"endpointId": hookID}})
		n.fails(410, "event_payload_dropped", req{method: "POST", path: "/v1/webhooks/" + hookID + "/deliveries/" + failed.ID + "/retry", cred: n.admin, ws: ws})
		res := n.fails(400, "invalid_request", req{method: "POST", path: "/v1/webhooks/" + hookID + "/recover", cred: n.admin, ws: ws,
			body: map[string]any{"since": at.Add(-time.Minute).Format(time.RFC3339)}})
		if f := res.detailFields(); len(f) != 1 || f[0] != "since" {
			t.Errorf("recovery past the retention: details %v", f)
		}
		// Within the retention: the fresh event succeeded, nothing to recover.
		if q := n.must(202, req{method: "POST", path: "/v1/webhooks/" + hookID + "/recover", cred: n.admin, ws: ws,
			body: map[string]any{"since": time.Now().Add(-30 * time.Minute).UTC().Format(time.RFC3339)}}).data()["queued"]; q != float64(0) {
			t.Errorf("recovery within the retention queued %v", q)
		}
	})
}

// attachStore opens the store of a node that is stopped, where serve finds it.
func attachStore(t *testing.T, dataDir, dbURL string) store.Store {
	t.Helper()
	var st store.Store
	var err error
	if dbURL != "" {
		st, err = postgres.Open(context.Background(), dbURL)
	} else {
		st, err = sqlite.Open(context.Background(), filepath.Join(dataDir, "keyplane.db"))
	}
	if err != nil {
		t.Fatalf("open the node's store: %v", err)
	}
	return st
}
