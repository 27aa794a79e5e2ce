package sqlstore

import (
	"testing"
	"time"
)

// TestLogKeysSeen: a key's row of a minute is given once, unless its write failed (not recorded as
// written); a new minute, or an older one (a late entry), gives it again; and keys idle for
// forgetMinutes are forgotten.
func TestLogKeysSeen(t *testing.T) {
	m0 := floorMicros(micros(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)), blockWindowMicros)
	block := func(minute int64, keys ...string) LogBlock {
		return LogBlock{WorkspaceID: "ws_1", Keys: keys, Minute: minute, MinuteID: minuteID(minute)}
	}
	rows := func(r []LogKeyRow) (out []string) {
		for _, x := range r {
			out = append(out, x.KeyID+"@"+x.MinuteID)
		}
		return out
	}
	s := NewLogKeysSeen()
	m1 := m0 + blockWindowMicros
	first := s.LogKeyRows([]LogBlock{block(m0, "a", "b")})
	if len(first) != 2 {
		t.Fatalf("first batch: %v, want a and b", rows(first))
	}
	if again := s.LogKeyRows([]LogBlock{block(m0, "a")}); len(again) != 1 {
		t.Fatalf("before the first was written: %v, want a again", rows(again))
	}
	s.Written(first)
	if again := s.LogKeyRows([]LogBlock{block(m0, "a", "b")}); len(again) != 0 {
		t.Fatalf("same minute after written: %v, want none", rows(again))
	}
	// Another workspace's key of the same id is another key.
	if other := s.LogKeyRows([]LogBlock{{WorkspaceID: "ws_2", Keys: []string{"a"}, Minute: m0, MinuteID: minuteID(m0)}}); len(other) != 1 {
		t.Fatalf("other workspace: %v, want its row", rows(other))
	}
	next := s.LogKeyRows([]LogBlock{block(m1, "a")})
	if len(next) != 1 || next[0].MinuteID != minuteID(m1) {
		t.Fatalf("next minute: %v, want a@%s", rows(next), minuteID(m1))
	}
	s.Written(next)
	if late := s.LogKeyRows([]LogBlock{block(m0, "a")}); len(late) != 1 {
		t.Fatalf("a late entry of the minute before: %v, want its row again (ignored by the insert)", rows(late))
	}
	// b was last written at m0: once the newest minute is forgetMinutes+1 later, it is forgotten.
	later := s.LogKeyRows([]LogBlock{block(m0+(forgetMinutes+1)*blockWindowMicros, "a")})
	s.Written(later)
	if len(s.newest) != 1 {
		t.Errorf("%d keys remembered, want only a", len(s.newest))
	}
	var none *LogKeysSeen
	if all := none.LogKeyRows([]LogBlock{block(m0, "a", "b")}); len(all) != 2 {
		t.Errorf("nil LogKeysSeen: %v, want every row", rows(all))
	}
	none.Written(first) // does nothing, and does not panic
}
