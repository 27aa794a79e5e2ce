package keyplane

import (
	"encoding/json"
	"time"
)

// ActorType says who made a change.
type ActorType string

// Actor types.
const (
	ActorUser    ActorType = "user"
	ActorAPIKey  ActorType = "api_key"
	ActorRootKey ActorType = "root_key"
	ActorSystem  ActorType = "system"
)

// Actor is who made a change, as written to the audit trail.
type Actor struct {
	Type ActorType `json:"type"`
	ID   string    `json:"id"`
	Name string    `json:"name"`
}

// Target is what a change was made to.
type Target struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Change is one field's value before and after a change.
type Change struct {
	From any `json:"from"`
	To   any `json:"to"`
}

// AuditEntry is one link of a workspace's hash chain. Body is the entry exactly as the API returns it,
// without "hash", in RFC 8785 canonical form: hash = hex(SHA-256(prevHash + Body)). The other fields
// are copies kept for filtering.
type AuditEntry struct {
	ID          string
	WorkspaceID string // "" for the operator chain (root keys, operator users)
	Seq         int64  // position in the chain, from 1
	Timestamp   time.Time
	Action      string
	ActorID     string
	TargetID    string
	Body        json.RawMessage
	Hash        string
}

// JSON is the entry as the API returns it: the stored canonical body with its hash added last.
func (e *AuditEntry) JSON() json.RawMessage {
	b := make([]byte, 0, len(e.Body)+80)
	b = append(b, e.Body[:len(e.Body)-1]...)
	b = append(b, `,"hash":"`...)
	b = append(b, e.Hash...)
	return append(b, `"}`...)
}

// AuditRecord is what a service call says about a change; the service turns it into an AuditEntry.
type AuditRecord struct {
	Action  string
	Target  Target
	Changes map[string]Change
}

// Event is a row of the outbox, written in the transaction of the change that caused it.
type Event struct {
	ID          string
	WorkspaceID string
	Type        string
	Data        json.RawMessage
	CreatedAt   time.Time
	// PayloadDropped: the event is older than the deployment's event retention and its Data was
	// dropped (Data is nil). The row stays, so that the deliveries log and the events list still name
	// it, but it can no longer be sent.
	PayloadDropped bool
}
