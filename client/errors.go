package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes of the API's error envelope (error.code). Match on these, not on messages.
const (
	CodeInvalidRequest       = "invalid_request"        // 400; Details names the fields
	CodeUnauthorized         = "unauthorized"           // 401
	CodeForbidden            = "forbidden"              // 403
	CodeLiveModeDisabled     = "live_mode_disabled"     // 403
	CodeNotFound             = "not_found"              // 404
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeKeyLimitReached      = "key_limit_reached"      // 409
	CodeKeyNotDeletable      = "key_not_deletable"      // 409
	CodeKeyRevoked           = "key_revoked"            // 409
	CodeLastOwner            = "last_owner"             // 409; the workspace would have no active owner
	CodeDeliveryNotRetryable = "delivery_not_retryable" // 409; only a failed webhook attempt is retried
	CodeEventPayloadDropped  = "event_payload_dropped"  // 410; the event is past the event retention
	CodeIdentityInUse        = "identity_in_use"        // 409; keys still belong to the identity
	CodeIdentityExists       = "identity_exists"        // 409; another identity has this externalId
	CodePayloadTooLarge      = "payload_too_large"      // 413
	CodeUnsupportedMediaType = "unsupported_media_type" // 415
	CodeIdempotencyKeyInUse  = "idempotency_key_in_use" // 409; the first call with this Idempotency-Key is still running
	CodeIdempotencyKeyReused = "idempotency_key_reused" // 422; the Idempotency-Key was sent with another call
	CodeRateLimited          = "rate_limited"           // 429; RetryAfter says how long to wait
	CodeInternal             = "internal"               // 500
	CodeUnavailable          = "unavailable"            // 503; RetryAfter says how long to wait
)

// Error is an answer of the API that is not a success.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the API's error.code, such as "not_found" (see the Code constants). It is empty when
	// the answer was not keyplane's error envelope (a proxy's error page, say).
	Code string
	// Message is for people.
	Message string
	// RequestID is the request's X-Request-Id: keyplane's logs hold it.
	RequestID string
	// Details lists each invalid field of an invalid_request answer.
	Details []FieldError
	// RetryAfter is the answer's Retry-After (429, 503), or 0.
	RetryAfter time.Duration
}

// FieldError is one invalid field of a request: its name (nested fields as "rateLimit.limit") and
// why.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("keyplane: ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for i, d := range e.Details {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", d.Field, d.Message)
		if i == len(e.Details)-1 {
			b.WriteString(")")
		}
	}
	if e.RequestID != "" {
		b.WriteString(" [request ")
		b.WriteString(e.RequestID)
		b.WriteString("]")
	}
	return b.String()
}

// Field returns the message of the invalid field named name, and whether there is one.
func (e *Error) Field(name string) (string, bool) {
	for _, d := range e.Details {
		if d.Field == name {
			return d.Message, true
		}
	}
	return "", false
}

// ErrorCode returns the API error code of err when it is (or wraps) an *Error, else "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// httpError is the Error of an answer that is not keyplane's envelope.
func httpError(status int, h http.Header, body []byte) *Error {
	msg := http.StatusText(status)
	if s := strings.TrimSpace(string(body)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		msg += ": " + s
	}
	return &Error{StatusCode: status, Message: msg, RequestID: h.Get("X-Request-Id"), RetryAfter: retryAfter(h)}
}

// retryAfter reads Retry-After: seconds, or an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
