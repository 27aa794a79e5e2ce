package sqlstore

import (
	"errors"
	"testing"

	"github.com/keyplane/keyplane/internal/store"
)

func TestNumberPlaceholders(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"x = '?' AND y = ? AND z = \"?\"", "x = '?' AND y = $1 AND z = \"?\""},
		{"'it''s' = ?", "'it''s' = $1"},
		{"? ? ? ? ? ? ? ? ? ? ?", "$1 $2 $3 $4 $5 $6 $7 $8 $9 $10 $11"},
	} {
		if got := numberPlaceholders(c.in); got != c.want {
			t.Errorf("numberPlaceholders(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRebindCaches(t *testing.T) {
	db := New(Dialect{Name: "test", NumberedPlaceholders: true}, nil, nil)
	q := "SELECT ? + ?"
	if got := db.Rebind(q); got != "SELECT $1 + $2" {
		t.Fatalf("Rebind = %q", got)
	}
	if _, ok := db.rebound.Load(q); !ok {
		t.Error("Rebind did not cache")
	}
	plain := New(Dialect{Name: "test"}, nil, nil)
	if got := plain.Rebind(q); got != q {
		t.Errorf("Rebind without numbered placeholders = %q", got)
	}
}

func TestCursors(t *testing.T) {
	c := encodeCursor(cursorAPIKey, "apk_01JD0000000000000000000000")
	if v, err := decodeCursor(cursorAPIKey, c); err != nil || v != "apk_01JD0000000000000000000000" {
		t.Errorf("decodeCursor(encodeCursor(x)) = %q, %v", v, err)
	}
	if _, err := decodeCursor(cursorWorkspace, c); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("cursor of another list: %v", err)
	}
	if seq, err := decodeSeqCursor(encodeCursor(cursorAudit, "42")); err != nil || seq != 42 {
		t.Errorf("decodeSeqCursor = %d, %v", seq, err)
	}
	for _, bad := range []string{
		"", "!", encodeCursor(cursorAudit, ""), encodeCursor(cursorAudit, "0"), encodeCursor(cursorAudit, "-1"),
		encodeCursor(cursorAudit, "x"), encodeCursor(cursorAudit, "99999999999999999999"),
	} {
		if _, err := decodeSeqCursor(bad); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("decodeSeqCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
	for _, bad := range []string{
		encodeCursor(cursorAPIKey, "a b"), encodeCursor(cursorAPIKey, "a'b"), encodeCursor(cursorAPIKey, "\x00"),
		encodeCursor(cursorAPIKey, string(make([]byte, 65))),
	} {
		if _, err := decodeCursor(cursorAPIKey, bad); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("decodeCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}
