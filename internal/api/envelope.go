package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/redact"
	"github.com/keyplane/keyplane/internal/verify"
)

// Body limits of the contract.
const (
	maxManagementBody = 1 << 20
	maxVerifyBody     = 64 << 10
)

type envelope struct {
	Success    bool       `json:"success"`
	Data       any        `json:"data,omitempty"`
	NextCursor *string    `json:"nextCursor,omitempty"`
	Error      *errorBody `json:"error,omitempty"`
}

type errorBody struct {
	Code      keyplane.Code         `json:"code"`
	Message   string                `json:"message"`
	RequestID string                `json:"requestId"`
	Details   []keyplane.FieldError `json:"details,omitempty"`
}

// buffers holds the buffers that bodies are read into and answers encoded in, so that a verification,
// which does both tens of thousands of times a second, allocates neither.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled bounds the buffers kept for reuse: a rare large body or answer is left to the collector.
const maxPooled = 64 << 10

func getBuffer() *bytes.Buffer {
	b := buffers.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooled {
		buffers.Put(b)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := getBuffer()
	defer putBuffer(buf)
	// Encode writes what json.Marshal would, and the newline.
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"success":false,"error":{"code":"internal","message":"the answer could not be encoded"}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeData(w http.ResponseWriter, status int, data any) {
	writeJSON(w, status, envelope{Success: true, Data: data})
}

// writeList answers a page: data is always an array, nextCursor always present (null on the last page).
type listEnvelope struct {
	Success    bool    `json:"success"`
	Data       any     `json:"data"`
	NextCursor *string `json:"nextCursor"`
}

func writeList(w http.ResponseWriter, data any, next string) {
	var c *string
	if next != "" {
		c = &next
	}
	writeJSON(w, http.StatusOK, listEnvelope{Success: true, Data: data, NextCursor: c})
}

var statusOf = map[keyplane.Code]int{
	keyplane.CodeInvalidRequest:       http.StatusBadRequest,
	keyplane.CodeUnauthorized:         http.StatusUnauthorized,
	keyplane.CodeForbidden:            http.StatusForbidden,
	keyplane.CodeLiveModeDisabled:     http.StatusForbidden,
	keyplane.CodeNotFound:             http.StatusNotFound,
	keyplane.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	keyplane.CodeKeyLimitReached:      http.StatusConflict,
	keyplane.CodeKeyNotDeletable:      http.StatusConflict,
	keyplane.CodeKeyRevoked:           http.StatusConflict,
	keyplane.CodeLastOwner:            http.StatusConflict,
	keyplane.CodeDeliveryNotRetryable: http.StatusConflict,
	keyplane.CodeEventPayloadDropped:  http.StatusGone,
	keyplane.CodeIdentityInUse:        http.StatusConflict,
	keyplane.CodeIdentityExists:       http.StatusConflict,
	keyplane.CodeIdempotencyKeyInUse:  http.StatusConflict,
	keyplane.CodeIdempotencyKeyReused: http.StatusUnprocessableEntity,
	keyplane.CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	keyplane.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	keyplane.CodeRateLimited:          http.StatusTooManyRequests,
	keyplane.CodeUnavailable:          http.StatusServiceUnavailable,
	keyplane.CodeInternal:             http.StatusInternalServerError,
}

// storeAnswers pings the store, briefly: called only for unexplained errors, to tell an outage from a
// bug.
func (s *Server) storeAnswers(r *http.Request) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Second)
	defer cancel()
	return s.svc.Health(ctx) == nil
}

// writeError answers err in the contract's envelope. Errors without a contract code are bugs or outages:
// the client gets no detail, the log gets all of it under the request id.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *keyplane.Error
	if !errors.As(err, &e) {
		code := keyplane.CodeInternal
		msg := "something went wrong on our side; the request id identifies it in our logs"
		switch {
		case errors.Is(err, verify.ErrUnavailable) || !s.storeAnswers(r):
			// An error while the store does not answer is the outage, not a bug: say so, and that
			// a retry may work.
			code, msg = keyplane.CodeUnavailable, "the key store cannot be reached right now; try again shortly"
		}
		s.log.ErrorContext(r.Context(), "request failed", "err", redact.Secrets(err.Error()), "method", r.Method, "path", redact.Secrets(r.URL.Path))
		e = &keyplane.Error{Code: code, Message: msg}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, envelope{Error: &errorBody{Code: e.Code, Message: redact.Secrets(e.Message), RequestID: requestID(r.Context()), Details: redactDetails(e.Details)}})
}

// redactDetails takes credentials out of the fields and messages that name what the caller sent (an
// unknown field, a permission not in the catalog): an error body is logged by clients and proxies
// that would never log the request.
func redactDetails(ds []keyplane.FieldError) []keyplane.FieldError {
	var out []keyplane.FieldError
	for i, d := range ds {
		f, m := redact.Secrets(d.Field), redact.Secrets(d.Message)
		if out == nil && (f != d.Field || m != d.Message) {
			out = append(make([]keyplane.FieldError, 0, len(ds)), ds[:i]...)
		}
		if out != nil {
			d.Field, d.Message = f, m
			out = append(out, d)
		}
	}
	if out == nil {
		return ds
	}
	return out
}

func invalid(field, format string, args ...any) *keyplane.Error {
	msg := fmt.Sprintf(format, args...)
	return &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid " + field + ": " + msg,
		Details: []keyplane.FieldError{{Field: field, Message: msg}}}
}

// decode reads a JSON object body into dst, strictly: JSON media type, size limit, no unknown fields,
// no member given twice or in another letter case than its field's (checkMembers), no trailing data.
// An empty body decodes as {} when optional.
func decode(w http.ResponseWriter, r *http.Request, dst any, limit int64, optional bool) error {
	return decodeFast(w, r, dst, limit, optional, nil)
}

// decodeFast is decode with a fast path: once the body has passed every check but the JSON decoding,
// fast may read it into dst itself and report true; when it reports false, encoding/json decodes as
// decode does. fast must accept only bodies that encoding/json would decode to the same value.
func decodeFast(w http.ResponseWriter, r *http.Request, dst any, limit int64, optional bool, fast func(body []byte) bool) error {
	if r.ContentLength > limit {
		return keyplane.Errorf(keyplane.CodePayloadTooLarge, "the body is larger than %d bytes", limit)
	}
	// The decoded value copies what it keeps (strings, and json.RawMessage by its contract), so the
	// body's buffer goes back to the pool when decode returns.
	buf := getBuffer()
	defer putBuffer(buf)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	body := buf.Bytes()
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return keyplane.Errorf(keyplane.CodePayloadTooLarge, "the body is larger than %d bytes", limit)
		}
		return keyplane.Errorf(keyplane.CodeInvalidRequest, "the body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return keyplane.Errorf(keyplane.CodeInvalidRequest, "a JSON object body is required")
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return keyplane.Errorf(keyplane.CodeUnsupportedMediaType, "send the body as application/json")
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); t[0] != '{' {
		return keyplane.Errorf(keyplane.CodeInvalidRequest, "the body must be a JSON object")
	}
	if fast != nil && fast(body) {
		return nil
	}
	if err := checkMembers(body, dst); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return keyplane.Errorf(keyplane.CodeInvalidRequest, "malformed JSON: data after the object")
	}
	return nil
}

// isJSON reports whether a Content-Type is application/json, with or without parameters; the two
// spellings clients send almost always are answered without parsing.
func isJSON(ct string) bool {
	if ct == "application/json" || ct == "application/json; charset=utf-8" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// jsonError turns encoding/json's errors into the contract's, naming the field where it can.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var kerr *keyplane.Error
	switch {
	case errors.As(err, &kerr):
		return kerr
	case errors.As(err, &syn):
		return keyplane.Errorf(keyplane.CodeInvalidRequest, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return invalid(field, "must be %s", jsonTypeName(typ.Type.String()))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return keyplane.Errorf(keyplane.CodeInvalidRequest, "malformed JSON: the body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return invalid(name, "is not a field of this request")
	}
	var terr *time.ParseError
	if errors.As(err, &terr) {
		return keyplane.Errorf(keyplane.CodeInvalidRequest, "a time must be RFC 3339, such as 2030-01-31T12:00:00Z")
	}
	return keyplane.Errorf(keyplane.CodeInvalidRequest, "malformed JSON: %s", err.Error())
}

func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "RateLimit"), strings.Contains(goType, "RawMessage"):
		return "an object"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case strings.Contains(goType, "Time"):
		return "an RFC 3339 time string"
	}
	return "a string"
}
