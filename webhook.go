package keyplane

import "time"

// Webhook rules of the contract.
const (
	// WebhookTimeout bounds one delivery attempt: connect, send and the answer's headers and body.
	WebhookTimeout = 15 * time.Second
	// WebhookResponseKept is how much of an answer's body an attempt records.
	WebhookResponseKept = 4096
	// WebhookDisableAfter: an endpoint whose deliveries have all failed for this long is disabled.
	WebhookDisableAfter = 5 * 24 * time.Hour
	// WebhookSecretOverlap is how long the previous signing secret still signs after a rotation, so
	// that receivers can switch without refusing a delivery.
	WebhookSecretOverlap = 24 * time.Hour
	// MaxWebhookURL bounds an endpoint's URL, in bytes.
	MaxWebhookURL = 2048
	// AllEvents subscribes an endpoint to every event type, those added later included.
	AllEvents = "*"
)

// WebhookEndpoint is a URL a workspace has subscribed to some of its events.
type WebhookEndpoint struct {
	ID          string
	WorkspaceID string
	URL         string
	Description string
	// EventTypes are catalog names, or just AllEvents.
	EventTypes []string
	Enabled    bool
	// DisabledReason says why keyplane disabled the endpoint; empty when a person did, or when enabled.
	DisabledReason string
	// Secret is the signing secret ("whsec_…"), sealed with the master key; PreviousSecret the one it
	// replaced, still signing until PreviousSecretUntil.
	Secret              []byte
	PreviousSecret      []byte
	PreviousSecretUntil *time.Time
	// FailingSince is the first failed attempt since the last success, nil when the last one succeeded.
	FailingSince *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Subscribed reports whether the endpoint wants events of type t.
func (e *WebhookEndpoint) Subscribed(t string) bool {
	for _, s := range e.EventTypes {
		if s == t || s == AllEvents {
			return true
		}
	}
	return false
}

// DeliveryStatus is an attempt's state: pending while scheduled or under way, then succeeded or failed.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Valid reports whether s is a known status.
func (s DeliveryStatus) Valid() bool {
	return s == DeliveryPending || s == DeliverySucceeded || s == DeliveryFailed
}

// Delivery is one attempt to deliver one event to one endpoint. A retry is a new attempt, a new row.
type Delivery struct {
	ID          string // dlv_…
	WorkspaceID string
	EndpointID  string
	EventID     string
	EventType   string
	Attempt     int // 1 for the first
	Status      DeliveryStatus
	// StatusCode is the endpoint's HTTP status, 0 when none came.
	StatusCode   int
	ResponseBody string // the first WebhookResponseKept bytes
	Error        string // why the attempt failed without a status, or what the status meant; "" when none
	DurationMs   *int64 // nil until the attempt is made
	CreatedAt    time.Time
	// NextAttemptAt is when a pending attempt is due; nil once it is made.
	NextAttemptAt *time.Time
	// Manual marks an attempt asked for by a person or a program (a retry), not by the schedule:
	// its failure schedules nothing more.
	Manual bool
}
