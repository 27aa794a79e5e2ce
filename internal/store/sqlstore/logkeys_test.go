package sqlstore

import (
	"errors"
	"testing"
	"time"
)

// TestLogKeysSeen: a key's row of a span is given once, unless its write failed (then every row is
// forgotten), and once a batch even when two of its blocks are of the span; a new span, or an older
// one (a late entry), gives it again; and keys idle for a span before the newest are forgotten.
func TestLogKeysSeen(t *testing.T) {
	m0 := floorMicros(micros(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)), keySpanMicros)
	block := func(span int64, keys ...string) LogBlock {
		return LogBlock{WorkspaceID: "ws_1", Keys: keys, Span: span, SpanID: minuteID(span)}
	}
	rows := func(r []LogKeyRow) (out []string) {
		for _, x := range r {
			out = append(out, x.KeyID+"@"+x.SpanID)
		}
		return out
	}
	// write writes blocks through s, the write failing when fail is set, and returns the rows given.
	write := func(s *LogKeysSeen, fail bool, blocks ...LogBlock) []LogKeyRow {
		var got []LogKeyRow
		err := s.Write(blocks, func(keys []LogKeyRow) error {
			got = keys
			if fail {
				return errors.New("refused")
			}
			return nil
		})
		if (err != nil) != fail {
			t.Fatalf("Write = %v, want an error only when the write fails", err)
		}
		return got
	}
	s := NewLogKeysSeen()
	m1 := m0 + keySpanMicros
	if first := write(s, true, block(m0, "a", "b"), block(m0, "b")); len(first) != 2 {
		t.Fatalf("first batch: %v, want a and b", rows(first))
	}
	if again := write(s, false, block(m0, "a", "b")); len(again) != 2 {
		t.Fatalf("after the first write failed: %v, want a and b again", rows(again))
	}
	if again := write(s, false, block(m0, "a", "b")); len(again) != 0 {
		t.Fatalf("same span after written: %v, want none", rows(again))
	}
	// Another workspace's key of the same id is another key.
	if other := s.LogKeyRows([]LogBlock{{WorkspaceID: "ws_2", Keys: []string{"a"}, Span: m0, SpanID: minuteID(m0)}}); len(other) != 1 {
		t.Fatalf("other workspace: %v, want its row", rows(other))
	}
	if next := write(s, false, block(m1, "a")); len(next) != 1 || next[0].SpanID != minuteID(m1) {
		t.Fatalf("next span: %v, want a@%s", rows(next), minuteID(m1))
	}
	if late := s.LogKeyRows([]LogBlock{block(m0, "a")}); len(late) != 1 {
		t.Fatalf("a late entry of the span before: %v, want its row again (ignored by the insert)", rows(late))
	}
	// b was last written at m0, still remembered while m0 is the span before the newest.
	if len(s.newest) != 2 {
		t.Errorf("%d keys remembered, want a and b", len(s.newest))
	}
	// Once the newest span is two after m0, b is forgotten.
	write(s, false, block(m0+2*keySpanMicros, "a"))
	if len(s.newest) != 1 {
		t.Errorf("%d keys remembered, want only a", len(s.newest))
	}
	// A failed write forgets every row: the database may have lost rows it acknowledged.
	write(s, true, block(m1, "c"))
	if len(s.newest) != 0 {
		t.Errorf("%d keys remembered after a failed write, want none", len(s.newest))
	}
	var none *LogKeysSeen
	if all := write(none, false, block(m0, "a", "b"), block(m0, "b"), block(m1, "b")); len(all) != 3 {
		t.Errorf("nil LogKeysSeen: %v, want every row once: a and b of m0, b of m1", rows(all))
	}
	write(none, true, block(m0, "a")) // forgets nothing, and does not panic
}
