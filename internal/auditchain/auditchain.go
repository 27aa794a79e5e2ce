// Package auditchain builds and checks the audit trail's hash chain. An entry's hash is
// hex(SHA-256(prevHash + C)), where C is the entry as the API returns it, without "hash", in RFC 8785
// canonical form; the first entry's prevHash is "". Anyone holding the API's answers can recompute it.
package auditchain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/jcs"
)

// TimeFormat is how the audit trail writes times: RFC 3339, UTC, at most microseconds.
const TimeFormat = time.RFC3339Nano

// Entry is the audit entry as the API shows it, minus its hash.
type Entry struct {
	ID        string                     `json:"id"`
	Timestamp string                     `json:"timestamp"`
	Action    string                     `json:"action"`
	Actor     keyplane.Actor             `json:"actor"`
	Target    keyplane.Target            `json:"target"`
	IP        string                     `json:"ip"`
	UserAgent string                     `json:"userAgent"`
	RequestID string                     `json:"requestId"`
	Changes   map[string]keyplane.Change `json:"changes"`
	PrevHash  string                     `json:"prevHash"`
}

// Body returns the canonical form of e: the bytes that are hashed and stored.
func Body(e *Entry) ([]byte, error) {
	if e.Changes == nil {
		e.Changes = map[string]keyplane.Change{}
	}
	b, err := jcs.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit body: %w", err)
	}
	return b, nil
}

// Link returns the hash of an entry with the given canonical body that follows prevHash.
func Link(prevHash string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// FormatTime writes t as the audit trail does.
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(TimeFormat) }

// Checker verifies a chain one entry at a time, oldest first.
type Checker struct {
	prev     string
	n        int
	firstBad string
}

// Add checks the next entry: its body must be canonical, name the previous entry's hash as its
// prevHash, and hash to the stored hash. It reports whether the chain is still good.
func (c *Checker) Add(e *keyplane.AuditEntry) bool {
	c.n++
	if c.firstBad != "" {
		return false
	}
	ok := func() bool {
		canon, err := jcs.Canonicalize(e.Body)
		if err != nil || string(canon) != string(e.Body) {
			return false
		}
		var parsed struct {
			ID       string `json:"id"`
			PrevHash string `json:"prevHash"`
		}
		if json.Unmarshal(e.Body, &parsed) != nil || parsed.ID != e.ID || parsed.PrevHash != c.prev {
			return false
		}
		return Link(c.prev, e.Body) == e.Hash
	}()
	if !ok {
		c.firstBad = e.ID
		return false
	}
	c.prev = e.Hash
	return true
}

// Result returns whether every entry checked out, how many were seen, and the first bad entry's id.
func (c *Checker) Result() (valid bool, entries int, firstBadID string) {
	return c.firstBad == "", c.n, c.firstBad
}
