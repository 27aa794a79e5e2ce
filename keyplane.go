// Package keyplane holds the domain of the keyplane API key service: its types, error codes and the
// rules that need no I/O. Everything that talks to a database, the network or the clock lives in
// internal packages that depend on this one, never the reverse.
package keyplane

import (
	"errors"
	"fmt"
)

// Code is a machine-readable error code, as listed in the API contract.
type Code string

// Error codes of the API contract.
const (
	CodeInvalidRequest   Code = "invalid_request"
	CodeUnauthorized     Code = "unauthorized"
	CodeForbidden        Code = "forbidden"
	CodeLiveModeDisabled Code = "live_mode_disabled"
	CodeNotFound         Code = "not_found"
	CodeMethodNotAllowed Code = "method_not_allowed"
	CodeKeyLimitReached  Code = "key_limit_reached"
	CodeKeyNotDeletable  Code = "key_not_deletable"
	CodeKeyRevoked       Code = "key_revoked"
	// CodeLastOwner refuses a change of role, a removal or a departure that would leave a workspace
	// without an active owner.
	CodeLastOwner            Code = "last_owner"
	CodeDeliveryNotRetryable Code = "delivery_not_retryable" // a manual retry of an attempt that did not fail
	CodeEventPayloadDropped  Code = "event_payload_dropped"  // sending again an event whose payload is past the event retention
	CodePortalLinkEnded      Code = "portal_link_ended"      // a portal link already used or past its expiry (410)
	CodeIdentityInUse        Code = "identity_in_use"        // deleting an identity that still has keys
	CodeIdentityExists       Code = "identity_exists"        // an externalId another identity of the workspace has
	// CodeIdempotencyKeyReused: an Idempotency-Key sent again with another method, path or body.
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	// CodeIdempotencyKeyInUse: an Idempotency-Key whose first request is still running.
	CodeIdempotencyKeyInUse  Code = "idempotency_key_in_use"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeRateLimited          Code = "rate_limited"
	CodeUnavailable          Code = "unavailable"
	CodeInternal             Code = "internal"
)

// FieldError names one invalid field of a request and why it is invalid.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an error a caller can act on: it carries a contract code and a message safe to show.
// Any other error reaching the API is a bug and is reported as CodeInternal.
type Error struct {
	Code    Code
	Message string
	Details []FieldError
}

func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s (%v)", e.Code, e.Message, e.Details)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the contract code of err, or CodeInternal when err carries none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// Validation collects field errors so that a request is answered with all of them at once.
type Validation struct {
	details []FieldError
}

// Add records that field is invalid.
func (v *Validation) Add(field, format string, args ...any) {
	v.details = append(v.details, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns nil when nothing was added, else an invalid_request *Error listing every field.
func (v *Validation) Err() error {
	if len(v.details) == 0 {
		return nil
	}
	msg := "invalid " + v.details[0].Field + ": " + v.details[0].Message
	if len(v.details) > 1 {
		msg = fmt.Sprintf("%d fields are invalid", len(v.details))
	}
	return &Error{Code: CodeInvalidRequest, Message: msg, Details: v.details}
}

// NotFound is the answer for a resource that does not exist in the caller's workspace. It never says
// whether the resource exists elsewhere.
func NotFound(kind string) *Error {
	return Errorf(CodeNotFound, "%s not found", kind)
}
