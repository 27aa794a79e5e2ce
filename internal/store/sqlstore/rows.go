package sqlstore

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// Times are stored as unix microseconds, so a time truncated to microseconds round-trips exactly and
// comes back in UTC.

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// nullString makes "" NULL: an optional reference (a key's identity).
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullBytes makes a nil slice NULL: drivers differ on whether they bind it as NULL or as empty.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// encodeList stores a list as a JSON array, [] when empty.
func encodeList(v []string) (string, error) {
	if len(v) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeList returns a non-nil slice, so that an empty list reads back as [] rather than null.
func decodeList(s string) ([]string, error) {
	if s == "[]" {
		return []string{}, nil // most keys' lists: a read of a key to verify decodes three
	}
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	if v == nil {
		v = []string{}
	}
	return v, nil
}

// decodeActor decodes an actor as json.Marshal wrote it: {"type":"…","id":"…","name":"…"}. Values of
// printable ASCII other than the quote and the backslash (nearly every actor: ids, and most names)
// are cut out of the string, several times faster than encoding/json; anything else is left to it.
func decodeActor(s string) (keyplane.Actor, error) {
	rest, ok := strings.CutPrefix(s, `{"type":"`)
	var a keyplane.Actor
	var typ string
	if ok {
		typ, rest, ok = plainValue(rest, `","id":"`)
	}
	if ok {
		a.ID, rest, ok = plainValue(rest, `","name":"`)
	}
	if ok {
		a.Name, rest, ok = plainValue(rest, `"}`)
	}
	if ok && rest == "" {
		a.Type = keyplane.ActorType(typ)
		return a, nil
	}
	a = keyplane.Actor{}
	err := json.Unmarshal([]byte(s), &a)
	return a, err
}

// plainValue returns s up to next, and what follows next, when s holds next and everything before it
// is printable ASCII other than the quote and the backslash (what encoding/json writes and reads
// unchanged between quotes).
func plainValue(s, next string) (value, rest string, ok bool) {
	i := strings.Index(s, next)
	if i < 0 {
		return "", "", false
	}
	for j := range i {
		if c := s[j]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", "", false
		}
	}
	return s[:i], s[i+len(next):], true
}

// jsonObject stores raw JSON as given, {} when empty.
func jsonObject(b json.RawMessage) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

// Cursors are opaque to callers: base64url of a kind byte and the last row's id (or audit seq). The
// kind byte makes a cursor of one list useless for another.
const (
	cursorWorkspace  = 'w'
	cursorAPIKey     = 'k'
	cursorAudit      = 'a'
	cursorRequestLog = 'r'
	maxCursorValue   = 64
)

func encodeCursor(kind byte, v string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, v...))
}

// decodeCursor returns the value of a cursor of the given kind, or an error wrapping
// store.ErrBadCursor.
func decodeCursor(kind byte, c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || len(b) > 1+maxCursorValue || b[0] != kind {
		return "", store.ErrBadCursor
	}
	for _, c := range b[1:] {
		// Ids and numbers only: printable ASCII without spaces or quotes.
		if c <= ' ' || c > '~' || c == '\'' || c == '"' {
			return "", store.ErrBadCursor
		}
	}
	return string(b[1:]), nil
}

func decodeSeqCursor(c string) (int64, error) {
	v, err := decodeCursor(cursorAudit, c)
	if err != nil {
		return 0, err
	}
	seq, err := strconv.ParseInt(v, 10, 64)
	if err != nil || seq < 1 {
		return 0, store.ErrBadCursor
	}
	return seq, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}
