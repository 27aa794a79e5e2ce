package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// Idempotency keys (the Idempotency-Key header of management POST and PATCH requests), after
// Stripe's: the first answer to a key is kept IdempotencyTTL and given again to the same request
// from the same credential, which does nothing more.
const (
	// IdempotencyTTL is how long a first answer is replayed. A record older than that counts for
	// nothing even while the cleanup job has not deleted it yet: the claim replaces it.
	IdempotencyTTL = 24 * time.Hour
	// IdempotencyLease is how long a running request holds its key. A node that dies while running
	// one leaves the record running; once the lease ends, the same request may run again. It is twice
	// serve's write timeout (60 s), past which no answer of the first run can reach its client.
	IdempotencyLease = 2 * time.Minute
	// MaxIdempotencyKey is the longest key accepted, in bytes.
	MaxIdempotencyKey = 255
	// IdempotencyHeader names the key's header, in errors about it.
	IdempotencyHeader = "Idempotency-Key"
)

// IdempotentRequest is a request sent with an Idempotency-Key.
type IdempotentRequest struct {
	// Scope is who sent it: the credential's id, and for a root key the workspace it acts on. Two
	// scopes never share a key.
	Scope string
	Key   string
	// Method, Path (with its query) and Body are what it asks: the same key with another of them is
	// refused (idempotency_key_reused).
	Method, Path string
	Body         []byte
}

// StoredAnswer is an answer kept for replays: its status, the headers that matter (Content-Type,
// Location) and its body.
type StoredAnswer struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

// Idempotent is a request's hold on its key. When Replay is set, the request already ran: answer
// Replay and do nothing. Otherwise the request holds the key: run it, then Finish with its answer.
type Idempotent struct {
	Replay *StoredAnswer
	s      *Service
	rec    store.IdempotencyRecord
}

// ValidIdempotencyKey checks a key: 1 to 255 printable ASCII characters.
func ValidIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKey {
		return idemInvalid("must be 1 to %d characters", MaxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return idemInvalid("must be printable ASCII characters only")
		}
	}
	return nil
}

func idemInvalid(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid " + IdempotencyHeader + " header: " + msg,
		Details: []keyplane.FieldError{{Field: IdempotencyHeader, Message: msg}}}
}

// BeginIdempotent claims req's key for it, or finds the answer to replay. Errors: the key is
// invalid (invalid_request), was used with another method, path or body (idempotency_key_reused),
// or its first request is still running (idempotency_key_in_use).
func (s *Service) BeginIdempotent(ctx context.Context, req IdempotentRequest) (*Idempotent, error) {
	if err := ValidIdempotencyKey(req.Key); err != nil {
		return nil, err
	}
	now := s.clock()
	claim := make([]byte, 16)
	rand.Read(claim)
	rec := store.IdempotencyRecord{Scope: req.Scope, Key: req.Key, Fingerprint: fingerprint(req), Claim: hex.EncodeToString(claim),
		CreatedAt: now, LeaseUntil: now.Add(IdempotencyLease), ExpiresAt: now.Add(IdempotencyTTL)}
	ok, found, err := s.store.ClaimIdempotencyKey(ctx, &rec, now)
	if err != nil {
		return nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	if ok {
		return &Idempotent{s: s, rec: rec}, nil
	}
	// The store took over any record whose ExpiresAt (its CreatedAt + IdempotencyTTL) has passed,
	// so found is younger than IdempotencyTTL: a replay is never of an older answer.
	switch {
	case string(found.Fingerprint) != string(rec.Fingerprint):
		return nil, keyplane.Errorf(keyplane.CodeIdempotencyKeyReused,
			"this Idempotency-Key was used with another method, path or body; send a new key for a new request")
	case !found.Done:
		return nil, keyplane.Errorf(keyplane.CodeIdempotencyKeyInUse,
			"the first request with this Idempotency-Key is still running; retry later")
	}
	plain, err := s.box.Open(found.Answer, idemAD(req.Scope, req.Key))
	if err != nil {
		return nil, fmt.Errorf("open the stored answer of an idempotency key: %w", err)
	}
	a, err := decodeAnswer(plain)
	if err != nil {
		return nil, fmt.Errorf("decode the stored answer of an idempotency key: %w", err)
	}
	return &Idempotent{Replay: a, s: s}, nil
}

// Finish ends the request's hold on its key with its answer: a replayable answer is kept, sealed
// (it may hold a new key's value), and given to the same request for IdempotencyTTL; any other lets
// the key go, so that a retry runs the request again.
func (i *Idempotent) Finish(ctx context.Context, a StoredAnswer) error {
	if i.Replay != nil {
		return nil
	}
	// The request has run: its answer is kept even when its client has gone.
	ctx = context.WithoutCancel(ctx)
	r := &i.rec
	if !Replayable(a.Status) {
		if err := i.s.store.ReleaseIdempotencyKey(ctx, r.Scope, r.Key, r.Claim); err != nil {
			return fmt.Errorf("release idempotency key: %w", err)
		}
		return nil
	}
	plain, err := encodeAnswer(a)
	if err != nil {
		return fmt.Errorf("encode an answer for its idempotency key: %w", err)
	}
	sealed := i.s.box.Seal(plain, idemAD(r.Scope, r.Key))
	if err := i.s.store.FinishIdempotencyKey(ctx, r.Scope, r.Key, r.Claim, a.Status, sealed); err != nil {
		return fmt.Errorf("store the answer of an idempotency key: %w", err)
	}
	return nil
}

// encodeAnswer writes an answer as its status and headers in one line of JSON, then its body as it
// is: not base64 inside the JSON, so that the plaintext holds the answer's secrets byte for byte, and
// a leak check that searches the database for them would find any that went unsealed.
func encodeAnswer(a StoredAnswer) ([]byte, error) {
	head, err := json.Marshal(StoredAnswer{Status: a.Status, Header: a.Header})
	if err != nil {
		return nil, err
	}
	return append(append(head, '\n'), a.Body...), nil
}

func decodeAnswer(b []byte) (*StoredAnswer, error) {
	head, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return nil, errors.New("no head line")
	}
	var a StoredAnswer
	if err := json.Unmarshal(head, &a); err != nil {
		return nil, err
	}
	a.Body = body
	return &a, nil
}

// Replayable reports whether an answer of this status is kept for replays. Successes and the
// caller's own mistakes (4xx: validation, not found, conflicts) are: running the same request again
// would answer the same, or worse, succeed after a change meant to refuse it. Failures on our side
// (5xx, the store unreachable, a panic) and 429 (a limit that passes) are not: the key is let go,
// so that the client's retry, the very case the key is for, runs the request again. 401 and a
// credential's 403 never get here: authentication answers them before any key is claimed.
func Replayable(status int) bool {
	return status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout
}

// fingerprint is the SHA-256 of what a request asks, its parts length-prefixed by separators no
// method or path holds.
func fingerprint(r IdempotentRequest) []byte {
	h := sha256.New()
	h.Write([]byte(r.Method + "\x00" + r.Path + "\x00"))
	h.Write(r.Body)
	return h.Sum(nil)
}

// idemAD binds a sealed answer to its record: copied onto another scope's or key's row, it does
// not open.
func idemAD(scope, key string) []byte {
	return []byte("keyplane/idempotent-answer/v1\x00" + scope + "\x00" + key)
}

// PruneIdempotencyKeys deletes the idempotency records past IdempotencyTTL, a bounded batch per
// transaction, and says how many went. The serve command runs it every hour; replays never depend
// on it.
func (s *Service) PruneIdempotencyKeys(ctx context.Context) (int64, error) {
	now := s.clock()
	return pruneAll(ctx, func(ctx context.Context) (int64, error) {
		return s.store.PruneIdempotencyKeys(ctx, now, pruneBatch)
	})
}
