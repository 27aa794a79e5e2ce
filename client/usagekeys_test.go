package client_test

import (
	"context"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestUsageBasedKeys: identities, the new key fields, credits operations, lists by identity and the
// usage export, through the SDK.
func TestUsageBasedKeys(t *testing.T) {
	ctx := context.Background()
	c, _ := newWorkspace(t, "usage")

	idn, err := c.CreateIdentity(ctx, client.CreateIdentityRequest{ExternalID: "customer_1", Meta: []byte(`{"plan":"pro"}`),
		Credits:    &client.CreditsRequest{Refill: &client.Refill{Interval: client.RefillMonthly, Amount: 100, RefillDay: 31}},
		RateLimits: []client.NamedRateLimit{{Name: "requests", Limit: 10, WindowMs: 1000, AutoApply: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if idn.Credits == nil || idn.Credits.Remaining != 100 || idn.Credits.Refill.RefillDay != 31 || len(idn.RateLimits) != 1 {
		t.Fatalf("identity %+v", idn)
	}
	_, err = c.CreateIdentity(ctx, client.CreateIdentityRequest{ExternalID: "customer_1"})
	if e := apiError(t, err); e.Code != client.CodeIdentityExists || e.StatusCode != 409 {
		t.Fatalf("duplicate: %v", e)
	}
	if got, err := c.GetIdentity(ctx, idn.ID); err != nil || got.ExternalID != "customer_1" {
		t.Fatalf("get: %+v, %v", got, err)
	}
	idn, err = c.UpdateIdentity(ctx, idn.ID, client.UpdateIdentityRequest{RateLimits: client.Null[[]client.NamedRateLimit]()})
	if err != nil || len(idn.RateLimits) != 0 {
		t.Fatalf("patch: %+v, %v", idn, err)
	}
	var n int
	for _, err := range c.AllIdentities(ctx, client.ListParams{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d identities", n)
	}

	remaining := int64(5)
	k := mustKey(t, c, client.CreateAPIKeyRequest{Name: "k", KeyType: client.KeyTypeSecret, ExternalID: "customer_1",
		Credits:    &client.CreditsRequest{Remaining: &remaining},
		RateLimits: []client.NamedRateLimit{{Name: "default", Limit: 100, WindowMs: 60000, AutoApply: true}, {Name: "tokens", Limit: 10, WindowMs: 1000}}})
	if k.IdentityID == nil || *k.IdentityID != idn.ID || k.ExternalID == nil || k.Credits == nil || k.Credits.Remaining != 5 ||
		k.RateLimit == nil || len(k.RateLimits) != 2 || k.RateLimits[0].Name != "default" {
		t.Fatalf("key %+v", k)
	}
	_, err = c.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "bad", KeyType: client.KeyTypeSecret, ExternalID: strings.Repeat("x", 256),
		Credits: &client.CreditsRequest{Refill: &client.Refill{Interval: client.RefillMonthly}}})
	if e := apiError(t, err); e.Code != client.CodeInvalidRequest || len(e.Details) != 2 {
		t.Fatalf("bad key: %v %+v", e, e.Details)
	}
	cr, err := c.ChangeAPIKeyCredits(ctx, k.ID, client.CreditsOperation{Op: client.CreditIncrement, Value: 10})
	if err != nil || cr.Remaining != 15 {
		t.Fatalf("increment: %+v, %v", cr, err)
	}
	cr, err = c.ChangeIdentityCredits(ctx, idn.ID, client.CreditsOperation{Op: client.CreditSet, Value: 7})
	if err != nil || cr.Remaining != 7 || cr.Refill == nil {
		t.Fatalf("set: %+v, %v", cr, err)
	}
	page, err := c.ListAPIKeys(ctx, client.ListAPIKeysParams{ExternalID: "customer_1"})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != k.ID {
		t.Fatalf("keys of customer_1: %+v, %v", page, err)
	}
	_, err = c.DeleteIdentity(ctx, idn.ID)
	if e := apiError(t, err); e.Code != client.CodeIdentityInUse {
		t.Fatalf("delete in use: %v", e)
	}
	k, err = c.UpdateAPIKey(ctx, k.ID, client.UpdateAPIKeyRequest{IdentityID: client.Null[string](), Credits: client.Null[client.CreditsRequest]()})
	if err != nil || k.IdentityID != nil || k.Credits != nil {
		t.Fatalf("out of the identity, unlimited: %+v, %v", k, err)
	}
	if d, err := c.DeleteIdentity(ctx, idn.ID); err != nil || !d.Deleted {
		t.Fatalf("delete: %+v, %v", d, err)
	}

	// Usage: a verification, counted once the log is flushed.
	v := newVerifier(shared.Verify)
	u := mustKey(t, c, client.CreateAPIKeyRequest{Name: "u", KeyType: client.KeyTypeSecret})
	if res, err := v.Verify(ctx, u.KeyValue, client.VerifyRequest{}); err != nil || !res.Valid {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	p := client.ExportUsageParams{Granularity: client.GranularityMonth, Since: time.Now().AddDate(0, -1, 0)}
	var rows []client.UsageRow
	testkit.Eventually(t, 10*time.Second, "the verification in the usage export", func() bool {
		rows = rows[:0]
		for row, err := range c.ExportUsage(ctx, p) {
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
		}
		return len(rows) == 1
	})
	if r := rows[0]; r.KeyID != u.ID || r.ExternalID != nil || r.Total != 1 || r.Valid != 1 || r.Codes[client.VerifyValid] != 1 {
		t.Fatalf("row %+v", r)
	}
	body, err := c.ExportUsageCSV(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	recs, err := csv.NewReader(body).ReadAll()
	if err != nil || len(recs) != 2 || recs[0][0] != "keyId" || recs[1][0] != u.ID || !slices.Contains(recs[0], "USAGE_EXCEEDED") {
		t.Fatalf("csv %q, %v", recs, err)
	}
	_, err = c.ExportUsageCSV(ctx, client.ExportUsageParams{GroupBy: "team"})
	if e := apiError(t, err); e.Code != client.CodeInvalidRequest || e.Details[0].Field != "groupBy" {
		t.Fatalf("bad export: %v", e)
	}
	if _, err := c.ListRequestLogs(ctx, client.ListRequestLogsParams{Tag: "checkout"}); err != nil {
		t.Fatal(err)
	}
}
