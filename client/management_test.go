package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/jcs"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestCatalogAndHealth: the calls that need no workspace.
func TestCatalogAndHealth(t *testing.T) {
	ctx := context.Background()
	c := client.New(shared.URL+"/", shared.Admin, client.WithHTTPClient(checkedHTTP())) // a trailing slash is fine

	st, err := c.Status(ctx)
	if err != nil || st.Status != "ok" || st.Store.Driver != "sqlite" || !st.Store.OK {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	doc, err := c.OpenAPI(ctx)
	if err != nil || !json.Valid(doc) || !strings.Contains(string(doc), `"openapi":"3.1.0"`) {
		t.Fatalf("openapi: %.100s, %v", doc, err)
	}
	perms, err := c.Permissions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := func(es []client.CatalogEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Name)
		}
		return out
	}
	for _, want := range []string{"api_keys:read", "orders:read", "otp:send"} {
		if !slices.Contains(names(perms), want) {
			t.Errorf("permissions %v lack %s", names(perms), want)
		}
	}
	evs, err := c.EventTypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"api_key.created", "order.created", "webhook.test"} {
		if !slices.Contains(names(evs), want) {
			t.Errorf("event types %v lack %s", names(evs), want)
		}
	}
}

// TestWorkspacesAndMembers walks the workspace calls.
func TestWorkspacesAndMembers(t *testing.T) {
	ctx := context.Background()
	c := newClient(shared.Admin)
	slug := "walk-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""))
	ws, err := c.CreateWorkspace(ctx, client.CreateWorkspaceRequest{Name: "Walk", Slug: slug, MaxKeys: new(50), LiveModeEnabled: new(true)})
	if err != nil {
		t.Fatal(err)
	}
	if ws.Slug != slug || ws.MaxKeys != 50 || ws.TestKeyTTLSeconds != 259200 || !ws.LiveModeEnabled || ws.CreatedAt.IsZero() || !strings.HasPrefix(ws.ID, "ws_") {
		t.Errorf("created: %+v", ws)
	}
	got, err := c.GetWorkspace(ctx, ws.ID)
	if err != nil || got.ID != ws.ID || !got.CreatedAt.Equal(ws.CreatedAt) {
		t.Fatalf("get: %+v, %v", got, err)
	}
	upd, err := c.UpdateWorkspace(ctx, ws.ID, client.UpdateWorkspaceRequest{Name: new("Walk renamed"), TestKeyTTLSeconds: new(int64(86400)), LiveModeEnabled: new(false)})
	if err != nil || upd.Name != "Walk renamed" || upd.TestKeyTTLSeconds != 86400 || upd.LiveModeEnabled || upd.MaxKeys != 50 {
		t.Fatalf("update: %+v, %v", upd, err)
	}
	// Live mode off: creating a live key is live_mode_disabled.
	_, err = c.InWorkspace(ws.ID).CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "live", KeyType: client.KeyTypeSecret})
	if e := apiError(t, err); e.StatusCode != 403 || e.Code != client.CodeLiveModeDisabled {
		t.Errorf("live key with live mode off: %v", e)
	}

	found := false
	for w, err := range c.AllWorkspaces(ctx, client.ListParams{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		found = found || w.ID == ws.ID
	}
	if !found {
		t.Errorf("AllWorkspaces lacks %s", ws.ID)
	}

	m, err := c.AddMember(ctx, ws.ID, client.AddMemberRequest{Email: "Ana@Example.com", Role: client.RoleDeveloper})
	if err != nil || m.Email != "ana@example.com" || m.Role != client.RoleDeveloper || m.Status != client.MemberInvited || !strings.HasPrefix(m.UserID, "usr_") {
		t.Fatalf("add member: %+v, %v", m, err)
	}
	ms, err := c.ListMembers(ctx, ws.ID)
	if err != nil || len(ms) != 1 || ms[0].UserID != m.UserID || ms[0].Status != client.MemberInvited {
		t.Fatalf("members: %+v, %v", ms, err)
	}
	gone, err := c.RemoveMember(ctx, ws.ID, m.UserID)
	if err != nil || gone.UserID != m.UserID || gone.Status != client.MemberInvited {
		t.Fatalf("remove member: %+v, %v", gone, err)
	}
	if ms, err := c.ListMembers(ctx, ws.ID); err != nil || len(ms) != 0 {
		t.Fatalf("members after removal: %+v, %v", ms, err)
	}
	_, err = c.RemoveMember(ctx, ws.ID, m.UserID)
	if e := apiError(t, err); e.Code != client.CodeNotFound || e.StatusCode != 404 {
		t.Fatalf("removing again: %v", err)
	}
}

// TestAPIKeyLifecycle walks every key call, verification's traces (request log, usage) and the
// audit trail, checking the hash chain from the API alone.
func TestAPIKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	w, ws := newWorkspace(t, "keys")
	v := newVerifier(shared.Verify, client.WithUserAgent("sdk-lifecycle"))

	k := mustKey(t, w, client.CreateAPIKeyRequest{
		Name: "Backend", KeyType: client.KeyTypeSecret, Description: "the backend",
		Permissions: []string{"orders:write", "orders:read"}, IPAllowlist: []string{"203.0.113.0/24"},
		Meta: json.RawMessage(`{"tier":"gold"}`), RateLimit: &client.RateLimit{Limit: 100, WindowMs: 60000},
	})
	if !strings.HasPrefix(k.KeyValue, "kp_sk_live_") || k.Status != client.StatusActive || k.WorkspaceID != ws.ID ||
		!slices.Equal(k.Permissions, []string{"orders:read", "orders:write"}) || k.RateLimit == nil || k.RateLimit.Limit != 100 ||
		string(k.Meta) != `{"tier":"gold"}` || k.ExpiresAt != nil || k.CreatedBy.Type != client.ActorRootKey || k.CreatedAt.IsZero() {
		t.Fatalf("created: %+v", k)
	}
	got, err := w.GetAPIKey(ctx, k.ID)
	if err != nil || got.KeyValue != "" || got.Start != k.Start || got.Description != "the backend" {
		t.Fatalf("get: %+v, %v", got, err)
	}

	// PATCH: explicit nulls clear, values set, absent fields stay.
	exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Microsecond)
	u, err := w.UpdateAPIKey(ctx, k.ID, client.UpdateAPIKeyRequest{
		Description: client.Null[string](), RateLimit: client.Null[client.RateLimit](),
		ExpiresAt: client.Some(exp), Permissions: client.Some([]string{"orders:read"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.Description != "" || u.RateLimit != nil || u.ExpiresAt == nil || !u.ExpiresAt.Equal(exp) ||
		!slices.Equal(u.Permissions, []string{"orders:read"}) || !slices.Equal(u.IPAllowlist, []string{"203.0.113.0/24"}) || u.Name != "Backend" {
		t.Fatalf("patched: %+v", u)
	}
	u, err = w.UpdateAPIKey(ctx, k.ID, client.UpdateAPIKeyRequest{ExpiresAt: client.Null[time.Time](), Enabled: new(false), Name: new("Backend 2")})
	if err != nil || u.ExpiresAt != nil || u.Status != client.StatusDisabled || u.DisabledAt == nil || u.Name != "Backend 2" {
		t.Fatalf("disabled: %+v, %v", u, err)
	}
	if res, err := v.Verify(ctx, k.KeyValue, client.VerifyRequest{IP: "203.0.113.9"}); err != nil || res.Code != client.VerifyDisabled {
		t.Fatalf("disabled key verifies %+v, %v", res, err)
	}
	if u, err = w.UpdateAPIKey(ctx, k.ID, client.UpdateAPIKeyRequest{Enabled: new(true)}); err != nil || u.Status != client.StatusActive || u.DisabledAt != nil {
		t.Fatalf("enabled: %+v, %v", u, err)
	}

	// Rotate with a grace period: both values verify.
	rot, err := w.RotateAPIKey(ctx, k.ID, client.RotateAPIKeyRequest{ExpireOldAfterSeconds: 60})
	if err != nil || rot.ID != k.ID || rot.KeyValue == "" || rot.KeyValue == k.KeyValue || rot.Start == k.Start {
		t.Fatalf("rotate: %+v, %v", rot, err)
	}
	for _, val := range []string{k.KeyValue, rot.KeyValue} {
		res, err := v.Verify(ctx, val, client.VerifyRequest{IP: "203.0.113.9", Permissions: []string{"orders:read"}})
		if err != nil || !res.Valid || res.Code != client.VerifyValid || res.KeyID != k.ID || res.WorkspaceID != ws.ID {
			t.Fatalf("verify after rotation: %+v, %v", res, err)
		}
	}

	// Reveal: a recoverable secret key for an admin root key; a non-recoverable one is 403.
	rk := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Recoverable", KeyType: client.KeyTypeSecret, Recoverable: true})
	rev, err := w.RevealAPIKey(ctx, rk.ID)
	if err != nil || rev.ID != rk.ID || rev.KeyValue != rk.KeyValue {
		t.Fatalf("reveal: %+v, %v", rev, err)
	}
	_, err = w.RevealAPIKey(ctx, k.ID)
	if e := apiError(t, err); e.StatusCode != 403 || e.Code != client.CodeForbidden {
		t.Errorf("reveal of a non-recoverable key: %v", e)
	}

	// The publishable key, and list filters.
	_, err = w.PublishableAPIKey(ctx, client.EnvLive)
	if e := apiError(t, err); e.StatusCode != 404 {
		t.Errorf("no publishable key yet: %v", e)
	}
	pk := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Web", KeyType: client.KeyTypePublishable, AllowedOrigins: []string{"https://Shop.example.com"}})
	pub, err := w.PublishableAPIKey(ctx, "")
	if err != nil || pub.ID != pk.ID || pub.KeyValue != pk.KeyValue || !strings.HasPrefix(pub.KeyValue, "kp_pk_live_") ||
		!slices.Equal(pub.AllowedOrigins, []string{"https://shop.example.com"}) {
		t.Fatalf("publishable: %+v, %v", pub, err)
	}
	tk := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Test", KeyType: client.KeyTypeSecret, Environment: client.EnvTest})
	// The server takes the expiry's "now" a few microseconds before createdAt (reported).
	if tk.ExpiresAt == nil || (tk.ExpiresAt.Sub(tk.CreatedAt)-259200*time.Second).Abs() > time.Second {
		t.Errorf("test key expiry: %v (created %v)", tk.ExpiresAt, tk.CreatedAt)
	}
	page, err := w.ListAPIKeys(ctx, client.ListAPIKeysParams{KeyType: client.KeyTypePublishable})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != pk.ID || page.NextCursor != "" {
		t.Fatalf("list publishable: %+v, %v", page, err)
	}
	page, err = w.ListAPIKeys(ctx, client.ListAPIKeysParams{Environment: client.EnvTest, Status: client.StatusActive})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != tk.ID {
		t.Fatalf("list test: %+v, %v", page, err)
	}
	page, err = w.ListAPIKeys(ctx, client.ListAPIKeysParams{})
	if err != nil || len(page.Items) != 4 || page.Items[0].ID != tk.ID { // newest first
		t.Fatalf("list all: %d keys, %v", len(page.Items), err)
	}

	// The request log holds the verifications (written within the flush interval); usage counts them.
	var logs []client.RequestLog
	testkit.Eventually(t, 5*time.Second, "verifications in the request log", func() bool {
		p, err := w.ListRequestLogs(ctx, client.ListRequestLogsParams{KeyID: k.ID, Source: client.SourceVerify})
		if err != nil {
			t.Fatal(err)
		}
		logs = p.Items
		return len(logs) >= 3
	})
	if l := logs[0]; l.Code != client.VerifyValid || l.IP != "203.0.113.9" || l.UserAgent != "sdk-lifecycle" || l.Path != "/v1/verify" ||
		l.Method != "POST" || l.Timestamp.IsZero() || !strings.HasPrefix(l.ID, "req_") {
		t.Errorf("newest log entry: %+v", l)
	}
	if p, err := w.ListRequestLogs(ctx, client.ListRequestLogsParams{KeyID: k.ID, Code: client.VerifyDisabled}); err != nil || len(p.Items) != 1 {
		t.Errorf("DISABLED entries: %+v, %v", p, err)
	}
	if p, err := w.ListRequestLogs(ctx, client.ListRequestLogsParams{Since: time.Now().Add(time.Hour)}); err != nil || len(p.Items) != 0 {
		t.Errorf("entries since an hour from now: %+v, %v", p, err)
	}
	// Usage counts are written every usage flush interval, after the entries: they catch up.
	var total, valid, disabled int64
	testkit.Eventually(t, 30*time.Second, "the verifications in the usage counts", func() bool {
		usage, err := w.APIKeyUsage(ctx, k.ID, client.UsageParams{})
		if err != nil || len(usage) != 25 && len(usage) != 24 {
			t.Fatalf("usage: %d buckets, %v", len(usage), err)
		}
		total, valid, disabled = 0, 0, 0
		for _, b := range usage {
			total, valid, disabled = total+b.Total, valid+b.Valid, disabled+b.Codes[client.VerifyDisabled]
		}
		return total >= 3
	})
	if total != 3 || valid != 2 || disabled != 1 {
		t.Errorf("usage: total %d valid %d disabled %d", total, valid, disabled)
	}
	days, err := w.APIKeyUsage(ctx, k.ID, client.UsageParams{Granularity: client.GranularityDay, Since: time.Now().Add(-72 * time.Hour)})
	if err != nil || len(days) != 4 || days[3].Total+days[2].Total != 3 {
		t.Errorf("daily usage: %+v, %v", days, err)
	}

	// Revoke (twice: the same answer), then delete permanently.
	r1, err := w.RevokeAPIKey(ctx, k.ID)
	if err != nil || r1.ID != k.ID || r1.RevokedAt.IsZero() {
		t.Fatalf("revoke: %+v, %v", r1, err)
	}
	r2, err := w.RevokeAPIKey(ctx, k.ID)
	if err != nil || !r2.RevokedAt.Equal(r1.RevokedAt) {
		t.Fatalf("revoke again: %+v, %v", r2, err)
	}
	_, err = w.RotateAPIKey(ctx, k.ID, client.RotateAPIKeyRequest{})
	if e := apiError(t, err); e.StatusCode != 409 || e.Code != client.CodeKeyRevoked {
		t.Errorf("rotate a revoked key: %v", e)
	}
	_, err = w.DeleteAPIKeyPermanently(ctx, rk.ID)
	if e := apiError(t, err); e.StatusCode != 409 || e.Code != client.CodeKeyNotDeletable {
		t.Errorf("delete an active key: %v", e)
	}
	d, err := w.DeleteAPIKeyPermanently(ctx, k.ID)
	if err != nil || d.ID != k.ID || !d.Deleted {
		t.Fatalf("delete: %+v, %v", d, err)
	}
	_, err = w.GetAPIKey(ctx, k.ID)
	if e := apiError(t, err); e.StatusCode != 404 || e.Code != client.CodeNotFound {
		t.Errorf("get a deleted key: %v", e)
	}

	// The audit trail: the key's story, a chain the server and this test both check.
	var actions []string
	for e, err := range w.AllAuditLogs(ctx, client.ListAuditLogsParams{TargetID: k.ID, Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, e.Action)
	}
	slices.Reverse(actions)
	// A patch that disables and changes other fields is one api_key.updated entry; api_key.disabled
	// and api_key.enabled are for patches that only flip enabled.
	want := []string{"api_key.created", "api_key.updated", "api_key.updated", "api_key.enabled", "api_key.rotated",
		"api_key.reveal_denied", "api_key.revoked", "api_key.deleted"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit actions\n got %v\nwant %v", actions, want)
	}
	p, err := w.ListAuditLogs(ctx, client.ListAuditLogsParams{Action: "api_key.revealed"})
	if err != nil || len(p.Items) != 1 || p.Items[0].Target.ID != rk.ID || p.Items[0].Actor.Type != client.ActorRootKey || p.Items[0].Actor.Name != "test admin" {
		t.Fatalf("reveal entries: %+v, %v", p, err)
	}
	var all []client.AuditEntry
	for e, err := range w.AllAuditLogs(ctx, client.ListAuditLogsParams{}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	slices.Reverse(all)
	prev := ""
	for _, e := range all {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(e.Raw, &fields); err != nil {
			t.Fatal(err)
		}
		delete(fields, "hash")
		b, _ := json.Marshal(fields)
		c, err := jcs.Canonicalize(b)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(append([]byte(prev), c...))
		if e.PrevHash != prev || hex.EncodeToString(sum[:]) != e.Hash {
			t.Fatalf("entry %s (%s) does not chain", e.ID, e.Action)
		}
		prev = e.Hash
	}
	av, err := w.VerifyAuditLogs(ctx)
	if err != nil || !av.Valid || av.Entries != len(all) || av.FirstBadID != nil {
		t.Fatalf("audit verify: %+v (%d entries listed), %v", av, len(all), err)
	}
}

// TestWorkspaceKeyCredential: a workspace secret key holding keyplane's permissions manages its own
// workspace without X-Workspace-Id, and nothing more.
func TestWorkspaceKeyCredential(t *testing.T) {
	ctx := context.Background()
	w, ws := newWorkspace(t, "wskey")
	ik := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Integration", KeyType: client.KeyTypeSecret, Permissions: []string{"api_keys:read", "logs:read"}})
	c := newClient(ik.KeyValue)
	page, err := c.ListAPIKeys(ctx, client.ListAPIKeysParams{})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != ik.ID {
		t.Fatalf("list with a workspace key: %+v, %v", page, err)
	}
	wss, err := c.ListWorkspaces(ctx, client.ListParams{})
	if err != nil || len(wss.Items) != 1 || wss.Items[0].ID != ws.ID {
		t.Fatalf("workspaces seen by a workspace key: %+v, %v", wss, err)
	}
	_, err = c.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "nope", KeyType: client.KeyTypeSecret})
	if e := apiError(t, err); e.StatusCode != 403 || e.Code != client.CodeForbidden {
		t.Errorf("create without api_keys:write: %v", e)
	}
	// Its calls are in its workspace's request log, as management calls.
	testkit.Eventually(t, 5*time.Second, "management calls in the log", func() bool {
		p, err := w.ListRequestLogs(ctx, client.ListRequestLogsParams{KeyID: ik.ID, Source: client.SourceManagement})
		return err == nil && len(p.Items) == 3
	})
}

// hook is an httptest endpoint that records what keyplane posts to it.
type hook struct {
	*httptest.Server
	mu  sync.Mutex
	got []http.Header
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		h.got = append(h.got, r.Header.Clone())
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) ids() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, g := range h.got {
		out = append(out, g.Get("webhook-id"))
	}
	return out
}

// TestWebhooks walks the webhook and event calls against a real receiver.
func TestWebhooks(t *testing.T) {
	ctx := context.Background()
	w, _ := newWorkspace(t, "hooks")
	h := newHook(t)

	wh, err := w.CreateWebhook(ctx, client.CreateWebhookRequest{URL: h.URL + "/hook", EventTypes: []string{"order.created", "api_key.created"}, Description: "receiver"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(wh.ID, "whk_") || !strings.HasPrefix(wh.Secret, "whsec_") || !wh.Enabled || wh.DisabledReason != nil || wh.Description != "receiver" {
		t.Fatalf("created: %+v", wh)
	}
	got, err := w.GetWebhook(ctx, wh.ID)
	if err != nil || got.Secret != "" || got.URL != h.URL+"/hook" {
		t.Fatalf("get: %+v, %v", got, err)
	}
	page, err := w.ListWebhooks(ctx, client.ListParams{Limit: 10})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != wh.ID {
		t.Fatalf("list: %+v, %v", page, err)
	}
	upd, err := w.UpdateWebhook(ctx, wh.ID, client.UpdateWebhookRequest{Description: client.Null[string](), EventTypes: []string{"order.created"}})
	if err != nil || upd.Description != "" || !slices.Equal(upd.EventTypes, []string{"order.created"}) {
		t.Fatalf("update: %+v, %v", upd, err)
	}
	rot, err := w.RotateWebhookSecret(ctx, wh.ID)
	if err != nil || rot.Secret == wh.Secret || !strings.HasPrefix(rot.Secret, "whsec_") || rot.PreviousSecretExpiresAt == nil ||
		rot.PreviousSecretExpiresAt.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("rotate: %+v, %v", rot, err)
	}
	rev, err := w.RevealWebhookSecret(ctx, wh.ID)
	if err != nil || rev.Secret != rot.Secret {
		t.Fatalf("reveal: %+v, %v", rev, err)
	}

	tr, err := w.TestWebhook(ctx, wh.ID, "")
	if err != nil || tr.StatusCode == nil || *tr.StatusCode != 204 || tr.Error != nil {
		t.Fatalf("test send: %+v, %v", tr, err)
	}
	_, err = w.SendEvent(ctx, client.SendEventRequest{Type: "api_key.created"})
	if e := apiError(t, err); e.StatusCode != 400 {
		t.Errorf("sending a keyplane event: %v", e)
	}
	ev, err := w.SendEvent(ctx, client.SendEventRequest{Type: "order.created", Data: json.RawMessage(`{"orderId":42}`)})
	if err != nil || !strings.HasPrefix(ev.ID, "evt_") || ev.Type != "order.created" || ev.Endpoints != 1 || ev.CreatedAt.IsZero() {
		t.Fatalf("send event: %+v, %v", ev, err)
	}
	testkit.Eventually(t, 15*time.Second, "the event delivered", func() bool { return slices.Contains(h.ids(), ev.ID) })

	var delivered *client.Delivery
	testkit.Eventually(t, 5*time.Second, "a succeeded delivery of the event", func() bool {
		p, err := w.ListDeliveries(ctx, wh.ID, client.ListDeliveriesParams{Status: client.DeliverySucceeded})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Items {
			if d.EventID == ev.ID {
				delivered = &d
				return true
			}
		}
		return false
	})
	if delivered.EventType != "order.created" || delivered.Attempt != 1 || delivered.StatusCode == nil || *delivered.StatusCode != 204 ||
		delivered.NextAttemptAt != nil || delivered.DurationMs == nil {
		t.Errorf("delivery: %+v", delivered)
	}
	// Only a failed attempt is retried: this one succeeded.
	_, err = w.RetryDelivery(ctx, wh.ID, delivered.ID)
	if e := apiError(t, err); e.StatusCode != 409 || e.Code != client.CodeDeliveryNotRetryable {
		t.Errorf("retry of a succeeded delivery: %v", e)
	}
	var types []string
	for d, err := range w.AllDeliveries(ctx, wh.ID, client.ListDeliveriesParams{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, d.EventType)
	}
	if len(types) != 2 || !slices.Contains(types, "webhook.test") {
		t.Errorf("deliveries: %v", types)
	}

	// A failed attempt is retried: an endpoint nobody listens on.
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	wd, err := w.CreateWebhook(ctx, client.CreateWebhookRequest{URL: goneURL + "/hook", EventTypes: []string{"order.created"}})
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := w.SendEvent(ctx, client.SendEventRequest{Type: "order.created", Data: json.RawMessage(`{"orderId":43}`)})
	if err != nil {
		t.Fatal(err)
	}
	var failed *client.Delivery
	testkit.Eventually(t, 15*time.Second, "a failed delivery of the event", func() bool {
		p, err := w.ListDeliveries(ctx, wd.ID, client.ListDeliveriesParams{Status: client.DeliveryFailed})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Items {
			if d.EventID == ev2.ID {
				failed = &d
				return true
			}
		}
		return false
	})
	retry, err := w.RetryDelivery(ctx, wd.ID, failed.ID)
	if err != nil || retry.Status != client.DeliveryPending || retry.Attempt != failed.Attempt+1 || retry.EventID != ev2.ID || retry.ID == failed.ID {
		t.Fatalf("retry: %+v, %v", retry, err)
	}
	if _, err := w.DeleteWebhook(ctx, wd.ID); err != nil {
		t.Fatal(err)
	}

	del, err := w.DeleteWebhook(ctx, wh.ID)
	if err != nil || del.ID != wh.ID || !del.Deleted {
		t.Fatalf("delete: %+v, %v", del, err)
	}
	_, err = w.GetWebhook(ctx, wh.ID)
	if e := apiError(t, err); e.Code != client.CodeNotFound {
		t.Errorf("get a deleted webhook: %v", e)
	}
}
