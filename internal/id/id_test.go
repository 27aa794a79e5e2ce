package id

import (
	"testing"
	"time"
)

func TestNewSortsByTimeAndValidates(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := NewAt(APIKey, t0), NewAt(APIKey, t0.Add(time.Millisecond))
	if !(a < b) {
		t.Fatalf("%s does not sort before %s", a, b)
	}
	if !Valid(APIKey, a) || Valid(Workspace, a) {
		t.Fatalf("Valid(%q) wrong", a)
	}
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		s := NewAt(Audit, t0)
		if seen[s] {
			t.Fatal("duplicate id within one millisecond")
		}
		seen[s] = true
	}
	for _, bad := range []string{"", "apk_", "apk_01ARZ3NDEKTSV4RRFFQ69G5FA", "apk_01ARZ3NDEKTSV4RRFFQ69G5FAVX", "apk_01arz3ndektsv4rrffq69g5fav", "apk_01ARZ3NDEKTSV4RRFFQ69G5FAI", "apk-01ARZ3NDEKTSV4RRFFQ69G5FAV", "ws_01ARZ3NDEKTSV4RRFFQ69G5FAV"} {
		if Valid(APIKey, bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
	if !Valid(APIKey, "apk_01ARZ3NDEKTSV4RRFFQ69G5FAV") {
		t.Error("a well-formed id refused")
	}
}
