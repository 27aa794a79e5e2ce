package keyplane

import (
	"bytes"
	"encoding/json"
)

// Optional is a field of a partial update that may be absent, explicitly null, or a value. PATCH needs
// all three: absent leaves a field alone, null clears it.
type Optional[T any] struct {
	Set   bool // the field was present
	Null  bool // it was present as null
	Value T
}

// Some returns a present, non-null Optional.
func Some[T any](v T) Optional[T] { return Optional[T]{Set: true, Value: v} }

// UnmarshalJSON records presence; encoding/json calls it only for fields that are present.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}
