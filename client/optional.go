package client

import (
	"bytes"
	"encoding/json"
)

// Optional is a field of a partial update (PATCH) that may be left out, sent as null, or sent with a
// value. The zero Optional is left out of the request; Null[T]() sends null, which clears the field
// (a description, a list, the rate limit, a live key's expiry); Some(v) sends v.
//
//	c.UpdateAPIKey(ctx, id, client.UpdateAPIKeyRequest{
//		RateLimit: client.Null[client.RateLimit](),                  // remove the limit
//		ExpiresAt: client.Some(time.Now().Add(30 * 24 * time.Hour)), // expire in 30 days
//	})
type Optional[T any] struct {
	value T
	set   bool
	null  bool
}

// Some returns an Optional that sends v.
func Some[T any](v T) Optional[T] { return Optional[T]{value: v, set: true} }

// Null returns an Optional that sends null.
func Null[T any]() Optional[T] { return Optional[T]{set: true, null: true} }

// IsZero reports whether o is left out of the request (the omitzero option of encoding/json).
func (o Optional[T]) IsZero() bool { return !o.set }

// IsNull reports whether o sends null.
func (o Optional[T]) IsNull() bool { return o.set && o.null }

// Get returns o's value and whether it sends one (neither left out nor null).
func (o Optional[T]) Get() (T, bool) { return o.value, o.set && !o.null }

// MarshalJSON writes null or the value; a left-out Optional is never written when its field is
// tagged omitzero.
func (o Optional[T]) MarshalJSON() ([]byte, error) {
	if !o.set || o.null {
		return []byte("null"), nil
	}
	return json.Marshal(o.value)
}

// UnmarshalJSON reads null or a value; encoding/json calls it only for fields that are present.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	var zero T
	o.value, o.set, o.null = zero, true, false
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.value)
}
