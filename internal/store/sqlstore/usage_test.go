package sqlstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// TestUsageStatements: counts of one rollup row (hour, workspace, key, code, identity) are summed
// into one row wherever they are in the input, minutes of one hour are one row, and the rows come in
// the primary key's order, in chunks of at most maxBatchRows, each chunk's query matching its rows.
func TestUsageStatements(t *testing.T) {
	h := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var counts []store.UsageCount
	// 300 keys, given in reverse, each twice in the hour (at :00 and :59) and once the hour after.
	for i := 299; i >= 0; i-- {
		k := fmt.Sprintf("apk_%03d", i)
		counts = append(counts,
			store.UsageCount{WorkspaceID: "ws_b", KeyID: k, Hour: h, Code: keyplane.VerifyValid, Requests: 1, CreditsSpent: 2},
			store.UsageCount{WorkspaceID: "ws_b", KeyID: k, Hour: h.Add(59 * time.Minute), Code: keyplane.VerifyValid, Requests: 3, CreditsSpent: 4},
			store.UsageCount{WorkspaceID: "ws_b", KeyID: k, Hour: h.Add(time.Hour), Code: keyplane.VerifyValid, Requests: 5})
	}
	// Rows that differ in one field only of the key stay apart.
	counts = append(counts,
		store.UsageCount{WorkspaceID: "ws_a", KeyID: "apk_000", Hour: h, Code: keyplane.VerifyValid, Requests: 7},
		store.UsageCount{WorkspaceID: "ws_b", KeyID: "apk_000", Hour: h, Code: keyplane.VerifyExpired, Requests: 11},
		store.UsageCount{WorkspaceID: "ws_b", KeyID: "apk_000", IdentityID: "idn_1", Hour: h, Code: keyplane.VerifyValid, Requests: 13})

	stmts := UsageStatements(counts)
	const perRow = 7
	var got []usageRow
	for i, st := range stmts {
		n := len(st.Args) / perRow
		if n == 0 || n > maxBatchRows || len(st.Args)%perRow != 0 {
			t.Fatalf("statement %d: %d args, want a positive multiple of %d, at most %d rows", i, len(st.Args), perRow, maxBatchRows)
		}
		if want := sqlAddUsage + batchRows(sqlUsageRow, n) + sqlAddUsageEnd; st.Query != want {
			t.Fatalf("statement %d: query for %d rows is not the %d-row query", i, n, n)
		}
		for a := st.Args; len(a) > 0; a = a[perRow:] {
			got = append(got, usageRow{a[0].(int64), a[1].(string), a[2].(string), a[3].(string), a[4].(string), a[5].(int64), a[6].(int64)})
		}
	}
	if len(got) != 600+3 {
		t.Fatalf("%d rows, want 603", len(got))
	}
	for i := 1; i < len(got); i++ {
		if compareUsageRows(&got[i-1], &got[i]) >= 0 {
			t.Fatalf("rows %d and %d out of order or the same: %+v, %+v", i-1, i, got[i-1], got[i])
		}
	}
	hour := micros(h)
	sums := map[string]int64{}
	for _, r := range got {
		sums[fmt.Sprintf("%d/%s/%s/%s/%s", r.hour-hour, r.workspaceID, r.keyID, r.code, r.identityID)] = r.requests*1000 + r.credits
	}
	next := int64(time.Hour / time.Microsecond)
	for k, want := range map[string]int64{
		"0/ws_b/apk_000/VALID/":                     4006,
		"0/ws_b/apk_299/VALID/":                     4006,
		fmt.Sprintf("%d/ws_b/apk_123/VALID/", next): 5000,
		"0/ws_a/apk_000/VALID/":                     7000,
		"0/ws_b/apk_000/EXPIRED/":                   11000,
		"0/ws_b/apk_000/VALID/idn_1":                13000,
	} {
		if sums[k] != want {
			t.Errorf("row %s: requests·1000 + credits = %d, want %d", k, sums[k], want)
		}
	}
}
