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

func TestFloorBoundsTheMillisecond(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 500_000, time.UTC) // half a millisecond in
	f := Floor(Request, t0)
	if !Valid(Request, f) {
		t.Fatalf("Floor = %q, not a valid id", f)
	}
	for range 1000 {
		if a := NewAt(Request, t0); a < f {
			t.Fatalf("an id of the same millisecond %s sorts before its floor %s", a, f)
		}
		if a := NewAt(Request, t0.Add(-time.Millisecond)); a >= f {
			t.Fatalf("an id of the millisecond before %s sorts at or after the floor %s", a, f)
		}
	}
	if Floor(Request, t0.Add(-400*time.Microsecond)) != f {
		t.Error("two times of one millisecond have different floors")
	}
}

func TestNewAtWith(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	random := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99}
	a, b := NewAtWith(Request, t0, random), NewAtWith(Request, t0, random)
	if a != b || !Valid(Request, a) || a < Floor(Request, t0) || a >= Floor(Request, t0.Add(time.Millisecond)) {
		t.Fatalf("NewAtWith = %s, %s: want one valid id of t0's millisecond", a, b)
	}
	if c := NewAtWith(Request, t0, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 11}); c == a {
		t.Error("another random part made the same id")
	}
}

func TestTimeReadsTheMillisecond(t *testing.T) {
	for _, at := range []time.Time{time.UnixMilli(0), time.Date(2026, 12, 4, 19, 50, 1, 987654321, time.UTC),
		time.UnixMilli(1<<48 - 1)} {
		for _, s := range []string{NewAt(Request, at), Floor(Request, at)} {
			got, ok := Time(Request, s)
			if want := at.Truncate(time.Millisecond).UTC(); !ok || !got.Equal(want) {
				t.Errorf("Time(%s) = %v, %v; want %v", s, got, ok, want)
			}
		}
	}
	for _, s := range []string{"", "req_", "apk_01JD0000000000000000000000", "req_01JD00000000000000000000I0", NewAt(APIKey, time.Now()),
		"req_80000000000000000000000000", "req_ZZZZZZZZZZZZZZZZZZZZZZZZZZ"} {
		if _, ok := Time(Request, s); ok {
			t.Errorf("Time(%q) accepted it", s)
		}
	}
}
