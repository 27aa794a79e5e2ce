// Package service holds keyplane's rules: who may do what, what a valid change is, and that every
// change commits together with its audit entry and its outbox event. The REST API and the dashboard
// both call it; neither repeats a rule.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/auditchain"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/masterkey"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/redact"
	"github.com/keyplane/keyplane/internal/store"
)

// Options configure a Service.
type Options struct {
	Store     store.Store
	Catalog   *keyplane.Catalog
	Box       *masterkey.Box
	KeyPrefix string
	// Forget is called after every committed change to a key with all the key's digests, so that
	// verification caches drop what they hold. Nil: nothing to tell.
	Forget func(hashes ...[]byte)
	// Admit is called with a new key value's digest before the change that stores it commits, so
	// that a membership filter of stored digests holds it before anyone can be given the value. Nil:
	// nothing to tell.
	Admit  func(hashes ...[]byte)
	Now    func() time.Time
	Logger *slog.Logger
	// SignIn throttles; nil fields get defaults.
	SignIn SignInLimits
	// PasswordParams is the cost of the password hashes this service makes, and of the dummy hash
	// that sign-ins with an unknown email check. Zero, always outside tests: password's default.
	// Tests set password.Cheap() (under the race detector a default hash takes seconds).
	PasswordParams password.Params
	// LogRetention is how long request log entries are kept; UsageRetention, their hourly rollups.
	// Zero: DefaultLogRetention, DefaultUsageRetention.
	LogRetention   time.Duration
	UsageRetention time.Duration
	// EventRetention is how long event payloads are kept for sending again; zero:
	// DefaultEventRetention.
	EventRetention time.Duration
	// Webhooks configure endpoints and delivery; zero fields take defaults.
	Webhooks WebhookOptions
	// PublicURL is where browsers reach this deployment (--public-url): portal links are made under
	// it. PortalSessionTTL is how long a portal session lasts once its link is opened; zero:
	// keyplane.DefaultPortalSessionTTL.
	PublicURL        string
	PortalSessionTTL time.Duration
}

// Service is keyplane's domain logic over a store.
type Service struct {
	store   store.Store
	catalog *keyplane.Catalog
	box     *masterkey.Box
	prefix  string
	forget  func(hashes ...[]byte)
	admit   func(hashes ...[]byte)
	now     func() time.Time
	log     *slog.Logger
	limits  SignInLimits
	// checkPassword is limits.Passwords.Check; tests wrap it to see which passwords get checked.
	checkPassword func(ctx context.Context, phc, pw string) (bool, error)
	// pwParams is the cost of the hashes made here; dummyHash, checked for unknown emails, has it too.
	pwParams  password.Params
	dummyHash string
	logKeep   time.Duration
	useKeep   time.Duration
	eventKeep time.Duration
	hooks     WebhookOptions
	publicURL string
	portalTTL time.Duration
}

// New returns a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Forget == nil {
		o.Forget = func(...[]byte) {}
	}
	if o.Admit == nil {
		o.Admit = func(...[]byte) {}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.SignIn.fill(o.Now)
	if o.LogRetention <= 0 {
		o.LogRetention = DefaultLogRetention
	}
	if o.UsageRetention <= 0 {
		o.UsageRetention = DefaultUsageRetention
	}
	if o.EventRetention <= 0 {
		o.EventRetention = DefaultEventRetention
	}
	o.Webhooks.fill()
	if o.PortalSessionTTL <= 0 {
		o.PortalSessionTTL = keyplane.DefaultPortalSessionTTL
	}
	dummy := dummyHash
	if o.PasswordParams != (password.Params{}) {
		dummy = password.HashWith(password.Generate(), o.PasswordParams)
	}
	return &Service{pwParams: o.PasswordParams, dummyHash: dummy, hooks: o.Webhooks, store: o.Store, catalog: o.Catalog, box: o.Box, prefix: o.KeyPrefix, forget: o.Forget, admit: o.Admit, now: o.Now, log: o.Logger, limits: o.SignIn,
		checkPassword: o.SignIn.Passwords.Check,
		logKeep:       o.LogRetention, useKeep: o.UsageRetention, eventKeep: o.EventRetention,
		publicURL: o.PublicURL, portalTTL: o.PortalSessionTTL}
}

// Catalog returns the deployment's permissions and event types.
func (s *Service) Catalog() *keyplane.Catalog { return s.catalog }

// Health says whether the store answers: nil when it does. The readiness and status pages ask it.
func (s *Service) Health(ctx context.Context) error { return s.store.Ping(ctx) }

// StoreDriver names the store's driver, which the status pages show.
func (s *Service) StoreDriver() string { return s.store.Driver() }

// clock returns now at the store's precision, so that what is returned equals what is read back.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// outcome is what a change produced besides its own rows: its audit record, its events, and the key
// digests whose cached lookups must be dropped once it commits.
type outcome struct {
	audit  *keyplane.AuditRecord
	events []pendingEvent
	forget [][]byte
	// queued counts the webhook attempts the change queued, so that a worker is told to come.
	queued int
}

type pendingEvent struct {
	typ  string
	data any
}

// change runs fn in one transaction on the chain's lock, then appends fn's audit entry and events to
// the same transaction. Nothing fn did is visible unless all of it commits.
func (s *Service) change(ctx context.Context, c *keyplane.Caller, chain string, fn func(tx store.Tx, now time.Time) (*outcome, error)) error {
	var out *outcome
	err := s.inTx(ctx, chain, func(tx store.Tx) error {
		now := s.clock()
		var err error
		out, err = fn(tx, now)
		if err != nil || out == nil {
			return err
		}
		if out.audit != nil {
			if err := s.appendAudit(ctx, tx, c, chain, now, out.audit); err != nil {
				return err
			}
		}
		for _, ev := range out.events {
			data, err := json.Marshal(ev.data)
			if err != nil {
				return fmt.Errorf("event data: %w", err)
			}
			_, n, err := s.emit(ctx, tx, chain, ev.typ, data, now)
			if err != nil {
				return err
			}
			out.queued += n
		}
		// Other nodes forget these digests when the change commits, not before: a node that read
		// the key meanwhile cached the old state, and drops it with the notice.
		if len(out.forget) > 0 {
			if err := tx.Publish(ctx, out.forget); err != nil {
				return fmt.Errorf("publish invalidation: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if out != nil && len(out.forget) > 0 {
		s.forget(out.forget...)
	}
	if out != nil && out.queued > 0 {
		s.hooks.Kick()
	}
	return nil
}

// inTx runs fn in one transaction on the chain's lock, as store.InTx does. A store out of disk space
// is the contract's unavailable, not a bug: the change was rolled back as a whole, and may be tried
// again once the operator has made room. The operator learns of it from this log.
func (s *Service) inTx(ctx context.Context, chain string, fn func(tx store.Tx) error) error {
	err := s.store.InTx(ctx, chain, fn)
	if errors.Is(err, store.ErrFull) {
		s.log.ErrorContext(ctx, "change refused: the store is out of disk space", "err", redact.Secrets(err.Error()))
		return fmt.Errorf("%w: %w", keyplane.Errorf(keyplane.CodeUnavailable, "the key store is out of disk space, so nothing was changed; try again later"), err)
	}
	return err
}

func (s *Service) appendAudit(ctx context.Context, tx store.Tx, c *keyplane.Caller, chain string, now time.Time, r *keyplane.AuditRecord) error {
	seq, prev, err := tx.LastAudit(ctx, chain)
	if err != nil {
		return fmt.Errorf("audit chain head: %w", err)
	}
	entry, err := auditEntry(c, chain, now, r, seq, prev)
	if err != nil {
		return err
	}
	if err := tx.InsertAudit(ctx, entry); err != nil {
		return fmt.Errorf("insert audit entry: %w", err)
	}
	return nil
}

// appendAudits appends records to the chain in one write, in order: a change of many rows (an
// import) reads the chain's head once, not once a record.
func (s *Service) appendAudits(ctx context.Context, tx store.Tx, c *keyplane.Caller, chain string, now time.Time, records []*keyplane.AuditRecord) error {
	seq, prev, err := tx.LastAudit(ctx, chain)
	if err != nil {
		return fmt.Errorf("audit chain head: %w", err)
	}
	entries := make([]keyplane.AuditEntry, len(records))
	for i, r := range records {
		e, err := auditEntry(c, chain, now, r, seq, prev)
		if err != nil {
			return err
		}
		entries[i] = *e
		seq, prev = e.Seq, e.Hash
	}
	if err := tx.InsertAudits(ctx, entries); err != nil {
		return fmt.Errorf("insert audit entries: %w", err)
	}
	return nil
}

// auditEntry is the entry of r that follows the chain's entry seq, whose hash is prev.
func auditEntry(c *keyplane.Caller, chain string, now time.Time, r *keyplane.AuditRecord, seq int64, prev string) (*keyplane.AuditEntry, error) {
	e := &auditchain.Entry{
		ID: id.NewAt(id.Audit, now), Timestamp: auditchain.FormatTime(now), Action: r.Action,
		Actor: c.Actor, Target: r.Target, IP: c.IP, UserAgent: c.UserAgent, RequestID: c.RequestID,
		Changes: r.Changes, PrevHash: prev,
	}
	body, err := auditchain.Body(e)
	if err != nil {
		return nil, err
	}
	return &keyplane.AuditEntry{
		ID: e.ID, WorkspaceID: chain, Seq: seq + 1, Timestamp: now, Action: r.Action,
		ActorID: c.Actor.ID, TargetID: r.Target.ID, Body: body, Hash: auditchain.Link(prev, body),
	}, nil
}

// Audit records an action that changes nothing else (a sign-in, a failed sign-in, a denied reveal).
func (s *Service) Audit(ctx context.Context, c *keyplane.Caller, chain string, r keyplane.AuditRecord) error {
	return s.change(ctx, c, chain, func(store.Tx, time.Time) (*outcome, error) {
		return &outcome{audit: &r}, nil
	})
}

// notFound maps a store miss to the contract's not found, naming the kind of resource.
func notFound(err error, kind string) error {
	if errors.Is(err, store.ErrNotFound) {
		return keyplane.NotFound(kind)
	}
	return err
}

// diff lists the fields whose JSON values differ between two views, ignoring the given fields. It
// compares the API's own representation, so that the audit trail speaks the API's language.
func diff(before, after any, ignore ...string) map[string]keyplane.Change {
	b, a := toMap(before), toMap(after)
	skip := map[string]bool{}
	for _, f := range ignore {
		skip[f] = true
	}
	out := map[string]keyplane.Change{}
	for k, av := range a {
		if skip[k] {
			continue
		}
		bv, had := b[k]
		if !had || string(bv) != string(av) {
			var from, to any
			if had {
				from = bv
			}
			to = av
			out[k] = keyplane.Change{From: from, To: to}
		}
	}
	return out
}

func toMap(v any) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	if v == nil {
		return m
	}
	b, err := json.Marshal(v)
	if err != nil {
		return m
	}
	_ = json.Unmarshal(b, &m)
	return m
}

// KeyPrefix returns the deployment's key prefix.
func (s *Service) KeyPrefix() string { return s.prefix }
