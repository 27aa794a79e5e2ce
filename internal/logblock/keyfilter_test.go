package logblock

import (
	"fmt"
	"testing"
)

// TestKeyFilter: a filter holds every key it was made of, whatever the count; keys it was not made
// of pass about one time in a hundred, not much more; and a filter it cannot read holds anything.
func TestKeyFilter(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 3000} {
		var keys []string
		for i := range n {
			keys = append(keys, fmt.Sprintf("apk_01JD%022d", i))
		}
		f := KeyFilter(keys)
		for _, k := range keys {
			if !MayHold(f, k) {
				t.Fatalf("%d keys: the filter leaves out %s, one of them", n, k)
			}
		}
		if n < 100 {
			continue
		}
		passed := 0
		const tries = 20000
		for i := range tries {
			if MayHold(f, fmt.Sprintf("apk_01JE%022d", i)) {
				passed++
			}
		}
		if rate := float64(passed) / tries; rate > 0.03 {
			t.Errorf("%d keys: %.2f %% of other keys pass, want about 1 %%", n, 100*rate)
		}
	}
	for _, bad := range [][]byte{nil, {}, {filterVersion}, {2, 0, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 1+24)} {
		if len(bad) == 25 {
			bad[0] = filterVersion // 24 bytes of bits: not a power of two
		}
		if !MayHold(bad, "apk_x") {
			t.Errorf("filter %v: MayHold = false, want true for a filter it cannot read", bad)
		}
	}
}

func BenchmarkKeyFilter(b *testing.B) {
	keys := make([]string, 2500)
	for i := range keys {
		keys[i] = fmt.Sprintf("apk_01JD%022d", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		KeyFilter(keys)
	}
}
