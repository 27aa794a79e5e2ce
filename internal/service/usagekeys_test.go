package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// wantFields checks that err is one invalid_request naming exactly fields.
func wantFields(t *testing.T, what string, err error, fields ...string) {
	t.Helper()
	e, ok := err.(*keyplane.Error)
	if !ok || e.Code != keyplane.CodeInvalidRequest {
		t.Errorf("%s: error %v, want invalid_request", what, err)
		return
	}
	var got []string
	for _, d := range e.Details {
		if !slices.Contains(got, d.Field) {
			got = append(got, d.Field)
		}
	}
	slices.Sort(got)
	want := slices.Clone(fields)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: fields %v (%v), want %v", what, got, e.Details, want)
	}
}

func ptr[T any](v T) *T { return &v }

// forgotten records the digests the service tells caches to forget.
type forgotten struct {
	mu     sync.Mutex
	hashes [][]byte
}

func (f *forgotten) Forget(h ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hashes = append(f.hashes, h...)
}

// took reports whether h was forgotten since the last call, and starts again.
func (f *forgotten) took(h []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := slices.ContainsFunc(f.hashes, func(x []byte) bool { return bytes.Equal(x, h) })
	f.hashes = nil
	return ok
}

func auditActions(t *testing.T, svc *service.Service, wsID, targetID string) []string {
	t.Helper()
	es, _, err := svc.ListAudit(context.Background(), keyplane.System("test"), wsID, keyplane.AuditFilter{TargetID: targetID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(es) - 1; i >= 0; i-- {
		out = append(out, es[i].Action)
	}
	return out
}

func TestUsageKeyValidation(t *testing.T) {
	svc, w := openShopWithOrders(t, "sqlite")
	ctx := context.Background()
	sys := keyplane.System("test")
	limit := func(name string, auto bool) keyplane.NamedRateLimit {
		return keyplane.NamedRateLimit{Name: name, Limit: 10, WindowMs: 1000, AutoApply: auto}
	}
	eleven := make([]keyplane.NamedRateLimit, 11)
	for i := range eleven {
		eleven[i] = limit("l"+string(rune('a'+i)), false)
	}
	for _, c := range []struct {
		name   string
		in     service.CreateKeyInput
		fields []string
	}{
		{"refill day 0 and negative remaining", service.CreateKeyInput{Credits: &service.CreditsInput{Remaining: ptr[int64](-1),
			Refill: &service.RefillInput{Interval: keyplane.RefillMonthly, Amount: ptr[int64](5), RefillDay: ptr(0)}}},
			[]string{"credits.remaining", "credits.refill.refillDay"}},
		{"monthly without amount, refill day on a daily refill", service.CreateKeyInput{Credits: &service.CreditsInput{
			Refill: &service.RefillInput{Interval: keyplane.RefillMonthly}}, RateLimits: []keyplane.NamedRateLimit{limit("Bad Name", true)}},
			[]string{"credits.refill.amount", "rateLimits[0].name"}},
		{"eleven limits, externalId of 256", service.CreateKeyInput{RateLimits: eleven, ExternalID: keyplane.Some(strings.Repeat("x", 256))},
			[]string{"rateLimits", "externalId"}},
		{"duplicate names, default not auto-applied", service.CreateKeyInput{RateLimits: []keyplane.NamedRateLimit{limit("a", false), limit("a", true), limit("default", false)}},
			[]string{"rateLimits[1].name", "rateLimits[2].autoApply"}},
		{"both identity fields, remaining over 10^12", service.CreateKeyInput{ExternalID: keyplane.Some("c1"), IdentityID: keyplane.Some("idn_x"),
			Credits: &service.CreditsInput{Remaining: ptr[int64](keyplane.MaxCredits + 1)}}, []string{"identityId", "credits.remaining"}},
		{"ten limits and a rateLimit", service.CreateKeyInput{RateLimits: eleven[:10], RateLimit: &keyplane.RateLimit{Limit: 1, WindowMs: 1000}},
			[]string{"rateLimits"}},
		{"rateLimit and a default entry", service.CreateKeyInput{RateLimits: []keyplane.NamedRateLimit{limit("default", true)}, RateLimit: &keyplane.RateLimit{Limit: 1, WindowMs: 1000}},
			[]string{"rateLimits"}},
		{"daily refill with a day", service.CreateKeyInput{Credits: &service.CreditsInput{Refill: &service.RefillInput{Interval: keyplane.RefillDaily, Amount: ptr[int64](1), RefillDay: ptr(3)}}},
			[]string{"credits.refill.refillDay"}},
	} {
		c.in.Name, c.in.KeyType = "k", keyplane.KeyTypeSecret
		_, _, err := svc.CreateAPIKey(ctx, sys, w.ID, c.in)
		wantFields(t, c.name, err, c.fields...)
	}
	_, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret, IdentityID: keyplane.Some("idn_01JDQ4ZW1A2B3C4D5E6F7G8H9J")})
	wantFields(t, "unknown identity", err, "identityId")

	// The default entry is the key's rateLimit; the rest are its named limits.
	k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret,
		RateLimits: []keyplane.NamedRateLimit{limit("tokens", false), limit("default", true)}})
	if err != nil {
		t.Fatal(err)
	}
	if k.RateLimit == nil || k.RateLimit.Limit != 10 || len(k.RateLimits) != 1 || k.RateLimits[0].Name != "tokens" {
		t.Fatalf("limits %+v %+v", k.RateLimit, k.RateLimits)
	}
	got, err := svc.GetAPIKey(ctx, sys, w.ID, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v := got.View(time.Now()); len(v.RateLimits) != 2 || v.RateLimits[0].Name != "default" || v.RateLimits[1].Name != "tokens" {
		t.Fatalf("stored limits %+v", v.RateLimits)
	}
	// A PATCH of rateLimits is the whole list: without default, no rateLimit.
	k, err = svc.UpdateAPIKey(ctx, sys, w.ID, k.ID, service.KeyPatch{RateLimits: keyplane.Some([]keyplane.NamedRateLimit{limit("tokens", true)})})
	if err != nil {
		t.Fatal(err)
	}
	if k.RateLimit != nil || len(k.RateLimits) != 1 || !k.RateLimits[0].AutoApply {
		t.Fatalf("patched limits %+v %+v", k.RateLimit, k.RateLimits)
	}
	_, err = svc.UpdateAPIKey(ctx, sys, w.ID, k.ID, service.KeyPatch{RateLimits: keyplane.Some(eleven), ExternalID: keyplane.Some(""),
		Credits: keyplane.Some(service.CreditsInput{Refill: &service.RefillInput{Interval: "weekly", Amount: ptr[int64](1)}})})
	wantFields(t, "bad patch", err, "rateLimits", "externalId", "credits.refill.interval")
}

func TestIdentities(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) { testIdentities(t, driver) })
	}
}

func testIdentities(t *testing.T, driver string) {
	var fg forgotten
	svc, _ := servicetest.Open(t, driver, service.Options{Forget: fg.Forget})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	other, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Other", Slug: "other"})
	if err != nil {
		t.Fatal(err)
	}

	idn, err := svc.CreateIdentity(ctx, sys, w.ID, service.IdentityInput{ExternalID: "customer_1", Meta: []byte(`{"plan":"pro"}`),
		Credits:    &service.CreditsInput{Remaining: ptr[int64](100)},
		RateLimits: []keyplane.NamedRateLimit{{Name: "requests", Limit: 5, WindowMs: 1000, AutoApply: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(idn.ID, "idn_") || idn.Credits == nil || idn.Credits.Remaining != 100 {
		t.Fatalf("identity %+v", idn)
	}
	_, err = svc.CreateIdentity(ctx, sys, w.ID, service.IdentityInput{ExternalID: "customer_1"})
	wantCode(t, "duplicate externalId", err, keyplane.CodeIdentityExists)
	// The same externalId in another workspace is another identity.
	if _, err := svc.CreateIdentity(ctx, sys, other.ID, service.IdentityInput{ExternalID: "customer_1"}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.CreateIdentity(ctx, sys, w.ID, service.IdentityInput{ExternalID: "", Credits: &service.CreditsInput{}})
	wantFields(t, "empty identity", err, "externalId", "credits.remaining")

	// Another workspace sees none of it.
	if _, err := svc.GetIdentity(ctx, sys, other.ID, idn.ID); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		t.Fatalf("cross-workspace get: %v", err)
	}
	if _, err := svc.ChangeIdentityCredits(ctx, sys, other.ID, idn.ID, service.CreditsChange{Op: keyplane.CreditSet, Value: 5}); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		t.Fatalf("cross-workspace credits: %v", err)
	}
	if _, err := svc.UpdateIdentity(ctx, sys, other.ID, idn.ID, service.IdentityPatch{Meta: keyplane.Some[json.RawMessage](nil)}); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		t.Fatalf("cross-workspace patch: %v", err)
	}
	if err := svc.DeleteIdentity(ctx, sys, other.ID, idn.ID); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		t.Fatalf("cross-workspace delete: %v", err)
	}
	if _, _, err := svc.CreateAPIKey(ctx, sys, other.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret, IdentityID: keyplane.Some(idn.ID)}); keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
		t.Fatalf("a key of another workspace in this identity: %v", err)
	}

	// A key by identityId; a key by a new externalId makes its identity in the same change.
	k1, v1, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k1", KeyType: keyplane.KeyTypeSecret, IdentityID: keyplane.Some(idn.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if k1.IdentityID != idn.ID || k1.View(time.Now()).ExternalID == nil || *k1.View(time.Now()).ExternalID != "customer_1" {
		t.Fatalf("key 1 %+v", k1)
	}
	k2, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k2", KeyType: keyplane.KeyTypeSecret, ExternalID: keyplane.Some("customer_2")})
	if err != nil {
		t.Fatal(err)
	}
	if k2.IdentityID == "" || k2.IdentityID == idn.ID {
		t.Fatalf("key 2's identity %q", k2.IdentityID)
	}
	if acts := auditActions(t, svc, w.ID, k2.IdentityID); !slices.Equal(acts, []string{"identity.created"}) {
		t.Fatalf("made identity audited as %v", acts)
	}
	k3, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k3", KeyType: keyplane.KeyTypeSecret, ExternalID: keyplane.Some("customer_2")})
	if err != nil || k3.IdentityID != k2.IdentityID {
		t.Fatalf("key 3: %v, identity %q want %q", err, k3.IdentityID, k2.IdentityID)
	}
	keys, _, err := svc.ListAPIKeysOf(ctx, sys, w.ID, keyplane.KeyFilter{Limit: 10}, "customer_2", "")
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys of customer_2: %d, %v", len(keys), err)
	}
	keys, _, err = svc.ListAPIKeysOf(ctx, sys, w.ID, keyplane.KeyFilter{Limit: 10}, "", idn.ID)
	if err != nil || len(keys) != 1 || keys[0].ID != k1.ID {
		t.Fatalf("keys of %s: %v, %v", idn.ID, keys, err)
	}
	keys, _, err = svc.ListAPIKeysOf(ctx, sys, w.ID, keyplane.KeyFilter{Limit: 10}, "nobody", "")
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys of nobody: %v, %v", keys, err)
	}

	// A change to the identity reaches its keys' caches.
	h1 := keyformat.Hash(v1)
	fg.took(nil)
	idn, err = svc.UpdateIdentity(ctx, sys, w.ID, idn.ID, service.IdentityPatch{RateLimits: keyplane.Some([]keyplane.NamedRateLimit{})})
	if err != nil {
		t.Fatal(err)
	}
	if len(idn.RateLimits) != 0 || !fg.took(h1[:]) {
		t.Fatalf("patched identity %+v; key digest forgotten: no", idn)
	}
	_, err = svc.UpdateIdentity(ctx, sys, w.ID, idn.ID, service.IdentityPatch{ExternalID: keyplane.Some("customer_2")})
	wantCode(t, "rename to a taken externalId", err, keyplane.CodeIdentityExists)

	// In use while a key names it, even revoked; free once the key is moved out.
	wantCode(t, "delete in use", svc.DeleteIdentity(ctx, sys, w.ID, idn.ID), keyplane.CodeIdentityInUse)
	if _, err := svc.RevokeAPIKey(ctx, sys, w.ID, k1.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "delete in use by a revoked key", svc.DeleteIdentity(ctx, sys, w.ID, idn.ID), keyplane.CodeIdentityInUse)
	if err := svc.DeleteAPIKey(ctx, sys, w.ID, k1.ID); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteIdentity(ctx, sys, w.ID, idn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GetIdentity(ctx, sys, w.ID, idn.ID); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		t.Fatalf("deleted identity: %v", err)
	}
	if acts := auditActions(t, svc, w.ID, idn.ID); !slices.Equal(acts, []string{"identity.created", "identity.updated", "identity.deleted"}) {
		t.Fatalf("identity audited as %v", acts)
	}
	// A key moved out of its identity.
	k3, err = svc.UpdateAPIKey(ctx, sys, w.ID, k3.ID, service.KeyPatch{ExternalID: keyplane.Optional[string]{Set: true, Null: true}})
	if err != nil || k3.IdentityID != "" {
		t.Fatalf("moved out: %v, %q", err, k3.IdentityID)
	}
	// Identities need their permissions.
	dev := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_x"}, WorkspaceID: w.ID, Role: keyplane.RoleDeveloper,
		Permissions: keyplane.RolePermissions(keyplane.RoleDeveloper)}
	if _, _, err := svc.ListIdentities(ctx, dev, w.ID, 10, ""); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
		t.Fatalf("developer lists identities: %v", err)
	}
	// Who sees no keys sees no identity's values in the audit trail either.
	es, _, err := svc.ListAudit(ctx, dev, w.ID, keyplane.AuditFilter{TargetID: k2.IdentityID, Limit: 10})
	if err != nil || len(es) != 1 || strings.Contains(string(es[0].Body), "customer_2") || !strings.Contains(string(es[0].Body), `"redacted":true`) {
		t.Fatalf("audit for a developer: %v, %v", es, err)
	}
	list, _, err := svc.ListIdentities(ctx, sys, w.ID, 10, "")
	if err != nil || len(list) != 1 {
		t.Fatalf("identities: %v, %v", list, err)
	}
}

func TestCreditOperations(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) { testCreditOperations(t, driver) })
	}
}

func testCreditOperations(t *testing.T, driver string) {
	var fg forgotten
	clk := &fakeClock{now: time.Date(2030, 1, 31, 10, 0, 0, 0, time.UTC)}
	svc, _ := servicetest.Open(t, driver, service.Options{Now: clk.Now, Forget: fg.Forget, Webhooks: localWebhooks(t)})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "http://127.0.0.1:9/hook", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	k, value, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret,
		Credits: &service.CreditsInput{Remaining: ptr[int64](10), Refill: &service.RefillInput{Interval: keyplane.RefillMonthly, Amount: ptr[int64](50)}}})
	if err != nil {
		t.Fatal(err)
	}
	h := keyformat.Hash(value)
	if k.Credits == nil || k.Credits.Remaining != 10 || k.Credits.NextRefillAt == nil || !k.Credits.NextRefillAt.Equal(time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("credits %+v", k.Credits)
	}
	fg.took(nil)
	for _, c := range []struct {
		op        keyplane.CreditOp
		value     int64
		remaining int64
	}{{keyplane.CreditIncrement, 5, 15}, {keyplane.CreditDecrement, 3, 12}, {keyplane.CreditSet, 7, 7}, {keyplane.CreditDecrement, 100, 0}} {
		cr, err := svc.ChangeKeyCredits(ctx, sys, w.ID, k.ID, service.CreditsChange{Op: c.op, Value: c.value})
		if err != nil {
			t.Fatalf("%s %d: %v", c.op, c.value, err)
		}
		if cr.Remaining != c.remaining || cr.Refill == nil || cr.Refill.Amount != 50 {
			t.Fatalf("%s %d: %+v, want remaining %d with the refill kept", c.op, c.value, cr, c.remaining)
		}
		if !fg.took(h[:]) {
			t.Fatalf("%s: the key's digest was not forgotten", c.op)
		}
	}
	got, err := svc.GetAPIKey(ctx, sys, w.ID, k.ID)
	if err != nil || got.Credits == nil || got.Credits.Remaining != 0 {
		t.Fatalf("stored credits %+v, %v", got.Credits, err)
	}
	// Exhausted once, not again by a second decrement at 0.
	if _, err := svc.ChangeKeyCredits(ctx, sys, w.ID, k.ID, service.CreditsChange{Op: keyplane.CreditDecrement, Value: 1}); err != nil {
		t.Fatal(err)
	}
	types := queuedTypes(t, svc, w.ID, ep.ID)
	if n := countOf(types, keyplane.EventCreditsExhausted); n != 1 {
		t.Fatalf("events %v: want one %s", types, keyplane.EventCreditsExhausted)
	}
	if acts := auditActions(t, svc, w.ID, k.ID); countOf(acts, "api_key.credits_changed") != 5 {
		t.Fatalf("audit %v", acts)
	}
	// Unlimited: no balance to change but by set.
	u, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "u", KeyType: keyplane.KeyTypeSecret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.ChangeKeyCredits(ctx, sys, w.ID, u.ID, service.CreditsChange{Op: keyplane.CreditIncrement, Value: 1})
	wantInvalid(t, "increment unlimited", err, "op")
	_, err = svc.ChangeKeyCredits(ctx, sys, w.ID, u.ID, service.CreditsChange{Op: "double", Value: -1})
	wantFields(t, "bad op", err, "op", "value")
	if cr, err := svc.ChangeKeyCredits(ctx, sys, w.ID, u.ID, service.CreditsChange{Op: keyplane.CreditSet, Value: 3}); err != nil || cr.Remaining != 3 || cr.Refill != nil {
		t.Fatalf("set on unlimited: %+v, %v", cr, err)
	}
	// PATCH credits null: unlimited again.
	u, err = svc.UpdateAPIKey(ctx, sys, w.ID, u.ID, service.KeyPatch{Credits: keyplane.Optional[service.CreditsInput]{Set: true, Null: true}})
	if err != nil || u.Credits != nil {
		t.Fatalf("unlimited again: %+v, %v", u.Credits, err)
	}
	if got, _ := svc.GetAPIKey(ctx, sys, w.ID, u.ID); got.Credits != nil {
		t.Fatalf("stored: %+v", got.Credits)
	}
	other, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Other", Slug: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ChangeKeyCredits(ctx, sys, other.ID, k.ID, service.CreditsChange{Op: keyplane.CreditSet, Value: 1}); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		t.Fatalf("cross-workspace credits: %v", err)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func TestCreditRefills(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) { testCreditRefills(t, driver) })
	}
}

func testCreditRefills(t *testing.T, driver string) {
	clk := &fakeClock{now: time.Date(2030, 4, 10, 15, 0, 0, 0, time.UTC)}
	svc, st := servicetest.Open(t, driver, service.Options{Now: clk.Now, Webhooks: localWebhooks(t)})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "http://127.0.0.1:9/hook", EventTypes: []string{keyplane.EventCreditsRefilled, keyplane.EventCreditsExhausted}})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, r *service.RefillInput) *keyplane.APIKey {
		k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: name, KeyType: keyplane.KeyTypeSecret,
			Credits: &service.CreditsInput{Remaining: ptr[int64](2), Refill: r}})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	daily := mk("daily", &service.RefillInput{Interval: keyplane.RefillDaily, Amount: ptr[int64](5)})
	monthly := mk("monthly", &service.RefillInput{Interval: keyplane.RefillMonthly, Amount: ptr[int64](9), RefillDay: ptr(31)})
	remaining := func(k *keyplane.APIKey) *keyplane.Credits {
		t.Helper()
		c, err := st.GetCredits(ctx, keyplane.CreditAccount{WorkspaceID: w.ID, KeyID: k.ID})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Day 31 in April, a month of 30 days: the 30th.
	if c := remaining(monthly); !c.NextRefillAt.Equal(time.Date(2030, 4, 30, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("monthly next refill %v", c.NextRefillAt)
	}

	// Spend the daily key's balance through the ledger: 2, then nothing, and exhausted.
	acct := keyplane.CreditAccount{WorkspaceID: w.ID, KeyID: daily.ID}
	if g, err := svc.TakeCredits(ctx, acct, keyplane.CreditTake{Need: 1, Want: 2}); err != nil || g.Got != 2 || g.Remaining != 0 {
		t.Fatalf("take: %+v, %v", g, err)
	}
	for range 2 { // one exhaustion, one event, however many takes find nothing
		if g, err := svc.TakeCredits(ctx, acct, keyplane.CreditTake{Need: 1, Want: 1}); err != nil || g.Got != 0 {
			t.Fatalf("take from nothing: %+v, %v", g, err)
		}
	}
	if c := remaining(daily); c.ExhaustedAt == nil {
		t.Fatalf("not marked exhausted: %+v", c)
	}
	// At midnight the daily refill is due: the next take refills first, the job has nothing left.
	clk.Add(9*time.Hour + time.Minute) // 2030-04-11 00:01
	if g, err := svc.TakeCredits(ctx, acct, keyplane.CreditTake{Need: 1, Want: 1}); err != nil || g.Got != 1 || g.Remaining != 4 {
		t.Fatalf("take after midnight: %+v, %v", g, err)
	}
	c := remaining(daily)
	if c.LastRefillAt == nil || !c.LastRefillAt.Equal(time.Date(2030, 4, 11, 0, 0, 0, 0, time.UTC)) ||
		!c.NextRefillAt.Equal(time.Date(2030, 4, 12, 0, 0, 0, 0, time.UTC)) || c.ExhaustedAt != nil {
		t.Fatalf("daily after refill %+v", c)
	}
	if n, err := svc.RefillDue(ctx); err != nil || n != 0 {
		t.Fatalf("job after the take's refill: %d, %v", n, err)
	}

	// No node runs from the 11th to 3 June: the daily key misses 53 refills and the monthly key two
	// (30 April, 31 May); each gets one, to its amount.
	clk.Add(53*24*time.Hour + 2*time.Hour) // 2030-06-03 02:01
	if n, err := svc.RefillDue(ctx); err != nil || n != 2 {
		t.Fatalf("job after the gap: %d refills, %v; want 2", n, err)
	}
	if n, err := svc.RefillDue(ctx); err != nil || n != 0 {
		t.Fatalf("job again: %d refills, %v; want 0", n, err)
	}
	c = remaining(daily)
	if c.Remaining != 5 || !c.LastRefillAt.Equal(time.Date(2030, 6, 3, 0, 0, 0, 0, time.UTC)) || !c.NextRefillAt.Equal(time.Date(2030, 6, 4, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("daily after the gap %+v", c)
	}
	c = remaining(monthly)
	if c.Remaining != 9 || !c.LastRefillAt.Equal(time.Date(2030, 5, 31, 0, 0, 0, 0, time.UTC)) || !c.NextRefillAt.Equal(time.Date(2030, 6, 30, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("monthly after the gap %+v", c)
	}
	types := queuedTypes(t, svc, w.ID, ep.ID)
	if countOf(types, keyplane.EventCreditsRefilled) != 3 || countOf(types, keyplane.EventCreditsExhausted) != 1 {
		t.Fatalf("events %v: want 3 refills and 1 exhaustion", types)
	}
	if acts := auditActions(t, svc, w.ID, daily.ID); countOf(acts, "api_key.credits_refilled") != 2 {
		t.Fatalf("daily audit %v", acts)
	}
	// An identity's balance refills too.
	idn, err := svc.CreateIdentity(ctx, sys, w.ID, service.IdentityInput{ExternalID: "c", Credits: &service.CreditsInput{Remaining: ptr[int64](0),
		Refill: &service.RefillInput{Interval: keyplane.RefillDaily, Amount: ptr[int64](3)}}})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(24 * time.Hour)
	if n, err := svc.RefillDue(ctx); err != nil || n != 2 {
		t.Fatalf("job a day later: %d, %v; want 2 (the daily key and the identity)", n, err)
	}
	if i, err := svc.GetIdentity(ctx, sys, w.ID, idn.ID); err != nil || i.Credits.Remaining != 3 {
		t.Fatalf("identity after refill %+v, %v", i, err)
	}
}
