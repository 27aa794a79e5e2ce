package auditchain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

func chain(t *testing.T, n int) []keyplane.AuditEntry {
	t.Helper()
	var out []keyplane.AuditEntry
	prev := ""
	for i := 0; i < n; i++ {
		e := &Entry{
			ID: "aud_" + strings.Repeat(string(rune('A'+i)), 26), Timestamp: FormatTime(time.Date(2030, 1, 1, 0, 0, i, 123456000, time.UTC)),
			Action: "api_key.updated", Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_1", Name: "Ana <ana@example.com>"},
			Target: keyplane.Target{Type: "api_key", ID: "apk_1"}, IP: "203.0.113.9", UserAgent: "curl/8", RequestID: "req_1",
			Changes:  map[string]keyplane.Change{"meta": {From: map[string]any{"b": 1, "a": "é"}, To: nil}, "name": {From: "a", To: "b"}},
			PrevHash: prev,
		}
		body, err := Body(e)
		if err != nil {
			t.Fatal(err)
		}
		h := Link(prev, body)
		out = append(out, keyplane.AuditEntry{ID: e.ID, Seq: int64(i + 1), Body: body, Hash: h})
		prev = h
	}
	return out
}

// The chain must be checkable by anyone from the API's answers: recompute it here the way the docs
// tell users to, from the JSON alone, without this package's helpers.
func TestChainIsCheckableFromTheAPIAlone(t *testing.T) {
	entries := chain(t, 3)
	prev := ""
	for _, e := range entries {
		api := string(e.Body[:len(e.Body)-1]) + `,"hash":"` + e.Hash + `"}` // as the API returns it
		var m map[string]any
		if err := json.Unmarshal([]byte(api), &m); err != nil {
			t.Fatal(err)
		}
		if m["prevHash"] != prev {
			t.Fatalf("prevHash = %v, want %q", m["prevHash"], prev)
		}
		delete(m, "hash")
		// encoding/json sorts keys and our values are ASCII-sortable and integer numbers; with HTML
		// escaping off it matches JCS for this entry.
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(prev + strings.TrimSuffix(b.String(), "\n")))
		if got := hex.EncodeToString(sum[:]); got != e.Hash {
			t.Fatalf("recomputed hash %s, stored %s", got, e.Hash)
		}
		prev = e.Hash
	}
}

func TestCheckerFindsTampering(t *testing.T) {
	var ck Checker
	for _, e := range chain(t, 4) {
		ck.Add(&e)
	}
	if ok, n, bad := ck.Result(); !ok || n != 4 || bad != "" {
		t.Fatalf("clean chain: %v %d %q", ok, n, bad)
	}
	tamper := map[string]func(es []keyplane.AuditEntry){
		"body edited": func(es []keyplane.AuditEntry) {
			es[2].Body = []byte(strings.Replace(string(es[2].Body), `"to":"b"`, `"to":"c"`, 1))
		},
		"hash edited":    func(es []keyplane.AuditEntry) { es[2].Hash = strings.Repeat("0", 64) },
		"entry removed":  func(es []keyplane.AuditEntry) { copy(es[2:], es[3:]); es[3] = es[2] },
		"non-canonical":  func(es []keyplane.AuditEntry) { es[2].Body = append([]byte(" "), es[2].Body...) },
		"id swapped":     func(es []keyplane.AuditEntry) { es[2].ID = es[1].ID },
		"rehashed alone": func(es []keyplane.AuditEntry) { es[2].Body = es[1].Body; es[2].Hash = Link("x", es[2].Body) },
	}
	for name, f := range tamper {
		es := chain(t, 4)
		f(es)
		var ck Checker
		for i := range es {
			ck.Add(&es[i])
		}
		if ok, _, bad := ck.Result(); ok || bad == "" {
			t.Errorf("%s: chain still verifies", name)
		}
	}
}
