// Package store defines the storage interface of keyplane. It is the only layer that knows SQL; its
// implementations (sqlite, postgres, both built on sqlstore) pass the same conformance suite in
// storetest.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/keyplane/keyplane"
)

var (
	// ErrNotFound: no row matched.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique constraint was violated (a workspace slug, a user's email, a secret hash).
	ErrConflict = errors.New("store: conflict")
	// ErrFull: the database is out of disk space (SQLite's file system, PostgreSQL's). The
	// transaction was rolled back; nothing of it was written.
	ErrFull = errors.New("store: out of disk space")
)

// InvalidationChannel is the PostgreSQL channel on which committed key changes are announced: each
// payload is a comma-separated list of hex SHA-256 digests to forget.
const InvalidationChannel = "keyplane_invalidate"

// OperatorChain is the audit chain of operator-level actions (root keys, operator users).
const OperatorChain = ""

// KeyFilter is the caller's filter of API keys with the time the keys' Status is judged at, which
// the service sets. Status is derived from the key's fields at Now, exactly as
// keyplane.APIKey.Status does.
type KeyFilter struct {
	keyplane.KeyFilter
	Now time.Time
}

// The other filters are the callers' own: the store applies them as they are.
type (
	AuditFilter    = keyplane.AuditFilter
	LogFilter      = keyplane.LogFilter
	DeliveryFilter = keyplane.DeliveryFilter
	EventFilter    = keyplane.EventFilter
)

// UsageFilter selects a key's usage buckets: those of width Bucket (an hour or a day; buckets are
// aligned on the unix epoch, so days are UTC days) whose hours lie in [Since, Until).
type UsageFilter struct {
	Bucket time.Duration
	Since  time.Time
	Until  time.Time
}

// Queries are the reads. Lists are newest first and return the cursor of the next page, or "" when
// there is none. A malformed cursor yields an error wrapping ErrBadCursor.
type Queries interface {
	GetWorkspace(ctx context.Context, id string) (*keyplane.Workspace, error)
	GetWorkspaceBySlug(ctx context.Context, slug string) (*keyplane.Workspace, error)
	ListWorkspaces(ctx context.Context, limit int, cursor string) ([]keyplane.Workspace, string, error)

	// GetAPIKey returns the key only if it belongs to workspaceID; otherwise ErrNotFound.
	GetAPIKey(ctx context.Context, workspaceID, id string) (*keyplane.APIKey, error)
	ListAPIKeys(ctx context.Context, workspaceID string, f KeyFilter) ([]keyplane.APIKey, string, error)
	// CountKeys counts the workspace's keys that are not revoked (expired and disabled ones count).
	CountKeys(ctx context.Context, workspaceID string) (int, error)
	// FindAPIKey returns the key with this id, in whatever workspace: the read of verifications that
	// name a key by id (signatures, JWTs), made with a root key that is not in any workspace. Like
	// LookupSecret, it leaves LastUsedAt nil.
	FindAPIKey(ctx context.Context, id string) (*keyplane.APIKey, error)
	// LookupSecret finds the secret with this SHA-256 digest and its key: the verification read. The
	// key's LastUsedAt is nil: no verification answer shows it, and it lives apart from the keys
	// (with the usage counts), where it would cost the read a second query.
	LookupSecret(ctx context.Context, hash []byte) (*keyplane.APIKey, *keyplane.Secret, error)
	// VerificationKey is LookupSecret with only what a verification reads (keyplane.Compile, named
	// limits, credits, the identity, the secret's expiry, which it returns): the key's description,
	// start and end, prefix, creator, recoverability and timestamps other than its expiry and
	// revocation stay zero, as do the identity's timestamps. The read of every key a node has not
	// cached, so each column it leaves out is saved there.
	VerificationKey(ctx context.Context, hash []byte) (*keyplane.APIKey, *time.Time, error)
	// ListSecrets returns every stored value of a key, newest first.
	ListSecrets(ctx context.Context, keyID string) ([]keyplane.Secret, error)
	// NewestPublishableKey returns the newest publishable key of the workspace and environment that is
	// active at now (not revoked, enabled, not expired) with its current secret (ExpiresAt nil).
	NewestPublishableKey(ctx context.Context, workspaceID string, env keyplane.Environment, now time.Time) (*keyplane.APIKey, *keyplane.Secret, error)

	GetRootKeyByHash(ctx context.Context, hash []byte) (*keyplane.RootKey, error)
	GetRootKey(ctx context.Context, id string) (*keyplane.RootKey, error)
	// ListRootKeys returns every root key, revoked ones included, oldest first.
	ListRootKeys(ctx context.Context) ([]keyplane.RootKey, error)

	GetUser(ctx context.Context, id string) (*keyplane.User, error)
	// GetUserByEmail matches the email case-insensitively (emails are stored lower-cased).
	GetUserByEmail(ctx context.Context, email string) (*keyplane.User, error)
	// ListMembers returns the workspace's members, active and invited, with their emails, oldest
	// first.
	ListMembers(ctx context.Context, workspaceID string) ([]keyplane.Member, error)
	// ListMemberships returns the workspaces a user is an active member of, by workspace name: never
	// one they are only invited to.
	ListMemberships(ctx context.Context, userID string) ([]keyplane.Membership, error)
	// ListInvitations returns the workspaces a user is invited to and has not yet joined, by workspace
	// name, with the role offered.
	ListInvitations(ctx context.Context, userID string) ([]keyplane.Membership, error)

	// GetSession returns the session with this token digest, expired or not.
	GetSession(ctx context.Context, hash []byte) (*keyplane.Session, error)
	// GetPortalLink returns the portal session whose link has this token digest, used, expired or
	// not; GetPortalSession the one whose session token has this digest, ended or not. ErrNotFound
	// otherwise.
	GetPortalLink(ctx context.Context, linkHash []byte) (*keyplane.PortalSession, error)
	GetPortalSession(ctx context.Context, sessionHash []byte) (*keyplane.PortalSession, error)

	// LastAudit returns the newest entry's seq and hash of a chain, or 0 and "" for an empty chain.
	LastAudit(ctx context.Context, chain string) (seq int64, hash string, err error)
	// ListAudit returns a chain's entries newest first (by seq).
	ListAudit(ctx context.Context, chain string, f AuditFilter) ([]keyplane.AuditEntry, string, error)
	// ScanAudit calls fn for every entry of a chain, oldest first, stopping at fn's first error.
	ScanAudit(ctx context.Context, chain string, fn func(*keyplane.AuditEntry) error) error
	// AuditChains returns every chain that has entries (OperatorChain included when it has any).
	AuditChains(ctx context.Context) ([]string, error)

	// GetWebhook returns the endpoint only if it belongs to workspaceID; otherwise ErrNotFound.
	GetWebhook(ctx context.Context, workspaceID, id string) (*keyplane.WebhookEndpoint, error)
	// ListWebhooks lists a workspace's endpoints, newest first.
	ListWebhooks(ctx context.Context, workspaceID string, limit int, cursor string) ([]keyplane.WebhookEndpoint, string, error)
	// SubscribedWebhooks returns the workspace's enabled endpoints that want events of eventType.
	SubscribedWebhooks(ctx context.Context, workspaceID, eventType string) ([]keyplane.WebhookEndpoint, error)
	// GetDelivery returns an attempt of the endpoint, in the workspace; otherwise ErrNotFound.
	GetDelivery(ctx context.Context, workspaceID, endpointID, id string) (*keyplane.Delivery, error)
	// ListDeliveries lists an endpoint's attempts, newest first.
	ListDeliveries(ctx context.Context, workspaceID, endpointID string, f DeliveryFilter) ([]keyplane.Delivery, string, error)
	// KeysToNotify returns up to limit keys, of every workspace, that are not revoked, expire in
	// (after, until], and have no notice of kind for that expiry (InsertKeyNotice), soonest first.
	KeysToNotify(ctx context.Context, kind string, after, until time.Time, limit int) ([]keyplane.APIKey, error)
	// SealedSecrets returns up to limit stored values that hold a ciphertext, ordered by digest, after
	// the digest after (nil: from the first): the master key rotation's walk.
	SealedSecrets(ctx context.Context, after []byte, limit int) ([]keyplane.Secret, error)
	// AllWebhooks returns up to limit endpoints of every workspace, ordered by id, after the id after.
	AllWebhooks(ctx context.Context, after string, limit int) ([]keyplane.WebhookEndpoint, error)
	// GetEvent returns an event of the workspace; otherwise ErrNotFound.
	GetEvent(ctx context.Context, workspaceID, id string) (*keyplane.Event, error)
	// ListEvents lists a workspace's events, newest first (by id).
	ListEvents(ctx context.Context, workspaceID string, f EventFilter) ([]keyplane.Event, string, error)
	// EventDeliveries returns every attempt of an event of the workspace, to any endpoint, oldest
	// first (by creation, then attempt number). An event has few: one schedule's worth per endpoint, and the manual ones.
	EventDeliveries(ctx context.Context, workspaceID, eventID string) ([]keyplane.Delivery, error)
	// FailedDeliveries returns, for the events of the workspace whose ids lie in [since, until) (see
	// id.Floor) and after the event id after, the endpoint's last attempt of each event (the latest
	// created, then the highest attempt number), where that attempt failed and no attempt of the event to the endpoint is pending: what a
	// recovery sends again. Events whose payload was dropped are left out. Up to limit, by event id.
	FailedDeliveries(ctx context.Context, workspaceID, endpointID string, since, until time.Time, after string, limit int) ([]keyplane.Delivery, error)

	// GetIdentity returns the identity only if it belongs to workspaceID; otherwise ErrNotFound.
	GetIdentity(ctx context.Context, workspaceID, id string) (*keyplane.Identity, error)
	// GetIdentityByExternalID returns the workspace's identity of this externalId; otherwise
	// ErrNotFound.
	GetIdentityByExternalID(ctx context.Context, workspaceID, externalID string) (*keyplane.Identity, error)
	// ListIdentities lists a workspace's identities, newest first.
	ListIdentities(ctx context.Context, workspaceID string, limit int, cursor string) ([]keyplane.Identity, string, error)
	// CountIdentityKeys counts the keys of an identity, revoked ones included: an identity is in use
	// while any key names it.
	CountIdentityKeys(ctx context.Context, identityID string) (int, error)
	// IdentityKeyHashes returns the digests of every stored value of every key of the identity: what
	// a change to the identity publishes, since verification caches a key with its identity.
	IdentityKeyHashes(ctx context.Context, identityID string) ([][]byte, error)
	// GetCredits returns an account's balance; nil (and no error) when it is unlimited; ErrNotFound
	// when the key or identity is not in the account's workspace.
	GetCredits(ctx context.Context, a keyplane.CreditAccount) (*keyplane.Credits, error)
	// DueRefills returns up to limit accounts, of every workspace, whose NextRefillAt is at or
	// before now, soonest first.
	DueRefills(ctx context.Context, now time.Time, limit int) ([]keyplane.CreditAccount, error)

	// GetKeyLeak returns the leak record of the value with this digest; otherwise ErrNotFound.
	GetKeyLeak(ctx context.Context, hash []byte) (*keyplane.KeyLeak, error)
	// ListKeyLeaks returns up to limit leak records of a key of the workspace, newest first; none
	// for a key of another workspace.
	ListKeyLeaks(ctx context.Context, workspaceID, keyID string, limit int) ([]keyplane.KeyLeak, error)
}

// Tx is one transaction: every change and its audit entry and event commit together or not at all.
type Tx interface {
	Queries

	CreateWorkspace(ctx context.Context, w *keyplane.Workspace) error // ErrConflict: slug taken
	UpdateWorkspace(ctx context.Context, w *keyplane.Workspace) error // ErrNotFound

	InsertAPIKey(ctx context.Context, k *keyplane.APIKey) error
	// UpdateAPIKey writes every field of k except ID, WorkspaceID, KeyType, Environment, Prefix,
	// CreatedAt, CreatedBy and LastUsedAt (which only AddUsage moves, so that a change made
	// from a stale read cannot set it back). ErrNotFound when no key has k's id in k's workspace.
	UpdateAPIKey(ctx context.Context, k *keyplane.APIKey) error
	// DeleteAPIKey removes the key and all its secrets. ErrNotFound when absent.
	DeleteAPIKey(ctx context.Context, workspaceID, id string) error
	InsertSecret(ctx context.Context, s *keyplane.Secret) error // ErrConflict: hash exists
	// SupersedeSecrets ends every secret of the key except the one whose hash is keep: each one's
	// ExpiresAt becomes the earlier of its own and at, and its Ciphertext is erased.
	SupersedeSecrets(ctx context.Context, keyID string, keep []byte, at time.Time) error

	CreateRootKey(ctx context.Context, k *keyplane.RootKey) error
	// RevokeRootKey sets the key's RevokedAt to at; ErrNotFound when no key has the id or it was
	// already revoked.
	RevokeRootKey(ctx context.Context, id string, at time.Time) error

	CreateUser(ctx context.Context, u *keyplane.User) error // ErrConflict: email taken
	// UpdateUser writes Email, PasswordHash and UpdatedAt; ErrConflict: email taken, ErrNotFound. It
	// never writes Operator, which SetUserOperator alone changes: a password set on a workspace's chain
	// and operator powers taken away on the operator's chain at the same moment must not undo each
	// other with what each read before.
	UpdateUser(ctx context.Context, u *keyplane.User) error
	// SetUserOperator gives or takes the user's operator flag and sets UpdatedAt. ErrNotFound when
	// absent.
	SetUserOperator(ctx context.Context, userID string, operator bool, at time.Time) error
	// UpsertMember adds the member or changes its role and status (an empty Status is active); an
	// existing member keeps its CreatedAt.
	UpsertMember(ctx context.Context, m *keyplane.Member) error
	// DeleteMember removes a member or an invitation. ErrNotFound when absent.
	DeleteMember(ctx context.Context, workspaceID, userID string) error

	CreateSession(ctx context.Context, s *keyplane.Session) error // ErrConflict: digest exists
	// UpdateSession writes ExpiresAt, ReauthAt and ReauthWorkspaceID. ErrNotFound when absent.
	UpdateSession(ctx context.Context, s *keyplane.Session) error
	// DeleteSession removes a session; absent is not an error.
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteUserSessions removes every session of a user and says how many.
	DeleteUserSessions(ctx context.Context, userID string) (int64, error)
	// DeleteExpiredSessions removes sessions that expired before now and says how many.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)

	// InsertPortalSession stores a new portal link (not opened: OpenedAt, ExpiresAt and EndedAt are
	// not written) with its token's digest. ErrConflict: the id or the digest exists.
	InsertPortalSession(ctx context.Context, ps *keyplane.PortalSession, linkHash []byte) error
	// OpenPortalLink uses the link of this digest, once, atomically: only a link not yet opened
	// whose LinkExpiresAt is after at gets sessionHash, OpenedAt at, ExpiresAt expires, and the
	// browser's ip and user agent; of concurrent calls one wins. It returns the session as it is
	// after; ErrNotFound (and nothing written) when no link matched.
	OpenPortalLink(ctx context.Context, linkHash, sessionHash []byte, at, expires time.Time, ip, userAgent string) (*keyplane.PortalSession, error)
	// EndPortalSession sets the EndedAt of a session of the workspace that has not ended yet.
	// ErrNotFound when none matched.
	EndPortalSession(ctx context.Context, workspaceID, id string, at time.Time) error
	// DeletePortalSessions removes the portal sessions whose link expired before before and whose
	// session was never opened, expired before before, or ended before before, and says how many.
	DeletePortalSessions(ctx context.Context, before time.Time) (int64, error)

	// Publish tells every node listening (PostgreSQL's LISTEN, see InvalidationChannel) to forget
	// these key digests, when and only if the transaction commits. On SQLite it appends them to the
	// change journal in the same transaction, which a serve process beside the CLI reads (see
	// sqlite.Journal). Every change that matters to verification publishes the digests it touches:
	// a new digest too, so that cached "unknown" answers go and membership filters learn it.
	Publish(ctx context.Context, hashes [][]byte) error

	InsertAudit(ctx context.Context, e *keyplane.AuditEntry) error
	InsertEvent(ctx context.Context, e *keyplane.Event) error

	// SetSecretCiphertext replaces a stored value's ciphertext (a re-sealing); ErrNotFound when the
	// value is gone or holds none any more.
	SetSecretCiphertext(ctx context.Context, hash, ciphertext []byte) error
	// InsertKeyNotice records that the notice kind went out for the key's expiry at expiresAt;
	// ErrConflict when it already had. A key's notices go with DeleteAPIKey.
	InsertKeyNotice(ctx context.Context, keyID, kind string, expiresAt time.Time) error

	InsertWebhook(ctx context.Context, e *keyplane.WebhookEndpoint) error
	// UpdateWebhook writes every field of e except ID, WorkspaceID, CreatedAt and FailingSince (which
	// only FinishDelivery moves). ErrNotFound when no endpoint has e's id in e's workspace.
	UpdateWebhook(ctx context.Context, e *keyplane.WebhookEndpoint) error
	// DeleteWebhook removes the endpoint and its deliveries log. ErrNotFound when absent.
	DeleteWebhook(ctx context.Context, workspaceID, id string) error
	// InsertDelivery adds an attempt: pending (the queue) or already made (a test send).
	InsertDelivery(ctx context.Context, d *keyplane.Delivery) error
	// FailPendingDeliveries ends the endpoint's pending attempts as failed with reason, leased ones
	// included, and says how many.
	FailPendingDeliveries(ctx context.Context, endpointID, reason string) (int64, error)

	// InsertIdentity adds an identity; ErrConflict when the workspace has one of its ExternalID.
	InsertIdentity(ctx context.Context, i *keyplane.Identity) error
	// UpdateIdentity writes ExternalID, Meta, RateLimits and UpdatedAt, never the credits (see
	// SetCredits). ErrConflict: externalId taken; ErrNotFound when absent from i's workspace.
	UpdateIdentity(ctx context.Context, i *keyplane.Identity) error
	// DeleteIdentity removes an identity. ErrNotFound when absent.
	DeleteIdentity(ctx context.Context, workspaceID, id string) error

	// SetCredits replaces an account's balance whole (nil: unlimited): Remaining, Refill,
	// LastRefillAt, NextRefillAt, ExhaustedAt, and Epoch moves on by one whatever c says (c.Epoch is
	// set to the new one). Key and identity rows are written with their credits only through the
	// credit calls, never by UpdateAPIKey or UpdateIdentity: a change made from a stale read must not
	// write back a balance that verifications have spent since. ErrNotFound when absent.
	SetCredits(ctx context.Context, a keyplane.CreditAccount, c *keyplane.Credits) error
	// AdjustCredits adds delta to a limited balance, at least 0 and at most keyplane.MaxCredits
	// after, atomically with concurrent takes, clears ExhaustedAt when delta > 0, and returns the
	// balance after. The epoch does not move: credits nodes hold stay good. ErrNotFound when absent
	// or unlimited.
	AdjustCredits(ctx context.Context, a keyplane.CreditAccount, delta int64) (*keyplane.Credits, error)
	// RefillCredits applies the refill due at due, once: when the account's NextRefillAt is due, it
	// sets Remaining to amount, LastRefillAt to due, NextRefillAt to next, clears ExhaustedAt and
	// moves the epoch on, and reports true; otherwise (another node refilled first, the refill
	// changed) it changes nothing and reports false.
	RefillCredits(ctx context.Context, a keyplane.CreditAccount, due time.Time, amount int64, next *time.Time) (bool, error)
	// MarkCreditsExhausted sets ExhaustedAt to at when the balance is at 0, of this epoch, and not
	// marked yet, and reports whether it did: one api_key.credits_exhausted event per exhaustion.
	MarkCreditsExhausted(ctx context.Context, a keyplane.CreditAccount, epoch int64, at time.Time) (bool, error)

	// InsertKeyLeak records a leaked value; ErrConflict when its digest has a record already (the
	// value was reported before). A key's records go with DeleteAPIKey.
	InsertKeyLeak(ctx context.Context, l *keyplane.KeyLeak) error
	// InsertImportedKeys stores keys migrated in from another system with their secrets, in bulk, in
	// this transaction: each secret is marked imported, so that a node's filter of values without
	// keyplane's format can start from them (sqlstore's EachImportedHash). ErrConflict when an id or
	// a digest exists. Unlike Store.ImportAPIKeys it is a change like any other: the caller writes
	// the audit entries and publishes the digests in the same transaction.
	InsertImportedKeys(ctx context.Context, keys []keyplane.APIKey, secrets []keyplane.Secret) error
	// StoredSecrets returns those of these digests that are stored, in no particular order.
	StoredSecrets(ctx context.Context, hashes [][]byte) ([][]byte, error)
	// InsertAudits appends entries, in order, as InsertAudit does each, in bulk: an import's. Any
	// conflict fails the whole.
	InsertAudits(ctx context.Context, entries []keyplane.AuditEntry) error
}

// UsageCount is a number of requests of one key, in one UTC hour, answered with one code: what
// AddUsage adds to the key's hourly rollup.
type UsageCount struct {
	WorkspaceID  string
	KeyID        string
	IdentityID   string    // the key's identity when the requests were made
	Hour         time.Time // the start of the UTC hour
	Code         keyplane.VerifyCode
	Requests     int64
	CreditsSpent int64
}

// ErrBadCursor is wrapped by list calls given a cursor they did not make.
var ErrBadCursor = errors.New("store: bad cursor")

// Store is a database holding keyplane's state.
type Store interface {
	Queries
	// InTx runs fn in one transaction and commits if fn returns nil. Transactions that name the same
	// audit chain are serialized, so that each sees the chain's last entry and a workspace's key count
	// as of its own start. fn may be retried on a serialization failure; it must not have effects
	// outside tx.
	InTx(ctx context.Context, chain string, fn func(tx Tx) error) error
	// WriteRequestLogs stores a batch of request log entries (each with its id set) in one
	// transaction, and nothing else: the usage rollups and last-used times go by AddUsage, which the
	// request log calls less often. It takes no audit chain lock: request logs belong to no chain, and
	// must neither wait for nor hold up the writers of one. Its commit may be relaxed (a power cut may
	// lose the last batches), never half applied.
	WriteRequestLogs(ctx context.Context, entries []keyplane.RequestLog) error
	// AddUsage adds counts to their keys' hourly usage rollups and moves each touched key's last-used
	// time forward only (a key that is gone is skipped). The counts are of entries already written by
	// WriteRequestLogs, so that once every count is added the rollups equal the raw log. The counts go
	// in one transaction, and last: a call that failed has added none of them and may be made again
	// whole (moving a last-used time twice does no harm). Like WriteRequestLogs it takes no chain
	// lock, and it never goes through UpdateAPIKey: a key's last use is not a change (no audit entry,
	// no event, nothing to forget).
	AddUsage(ctx context.Context, counts []UsageCount, touched map[string]time.Time) error
	// ListRequestLogs returns a workspace's request log entries, newest first (by id). Entries written
	// while a caller pages through the list never make a page repeat or skip an entry that was there
	// when the first page was read. Not part of Queries: the log may live in a database of its own,
	// which no transaction of the keys sees.
	ListRequestLogs(ctx context.Context, workspaceID string, f LogFilter) ([]keyplane.RequestLog, string, error)
	// Usage returns the buckets that hold requests of a key of the workspace, or of all its keys when
	// keyID is empty, oldest first, summed from the hourly rollups. A key of another workspace has
	// none.
	Usage(ctx context.Context, workspaceID, keyID string, f UsageFilter) ([]keyplane.UsageBucket, error)
	// ExportUsage calls fn with the workspace's usage rows, summed from the hourly rollups, ordered by
	// period then group (key or identity id), stopping at fn's first error: a stream, so that an
	// export of any size holds one row in memory.
	ExportUsage(ctx context.Context, workspaceID string, f keyplane.ExportFilter, fn func(*keyplane.UsageRow) error) error
	// PruneRequestLogs deletes request log entries older than before and says how many: about limit
	// (a store may delete them in blocks that end by before, and stop at the block that reaches
	// limit), fewer only once none is left. The caller repeats until fewer than limit go, so that no
	// transaction grows large. An entry stored with newer ones may outlive before by up to a minute.
	PruneRequestLogs(ctx context.Context, before time.Time, limit int) (int64, error)
	// PruneUsage deletes at most limit hourly usage rollups of hours that ended by before (the hour
	// before falls in stays) and says how many.
	PruneUsage(ctx context.Context, before time.Time, limit int) (int64, error)

	// DropEventPayloads drops the data of at most limit events, of every workspace, created before
	// before (by id) that have no pending attempt, oldest first, and says how many; the rows stay
	// (keyplane.Event.PayloadDropped). The caller repeats until fewer than limit go.
	DropEventPayloads(ctx context.Context, before time.Time, limit int) (int64, error)

	// ClaimDeliveries leases up to limit pending attempts that are due at now, to enabled endpoints not
	// in exclude, that no live lease holds: each gets the lease claim until until. Oldest due first.
	// Several workers, on several nodes, never get the same attempt while its lease lasts.
	ClaimDeliveries(ctx context.Context, now, until time.Time, claim string, limit int, exclude []string) ([]keyplane.Delivery, error)
	// FinishDelivery records the outcome of a leased attempt d (Status, StatusCode, ResponseBody,
	// Error, DurationMs; NextAttemptAt cleared), inserts next when not nil (the retry), and, unless d
	// is Manual, moves the endpoint's FailingSince: cleared on success, set to at on a failure when
	// unset. All in one transaction, and only while the lease claim still holds the attempt:
	// otherwise ErrNotFound and nothing is written. It returns the endpoint's FailingSince after.
	FinishDelivery(ctx context.Context, d *keyplane.Delivery, claim string, at time.Time, next *keyplane.Delivery) (*time.Time, error)

	// ClaimIdempotencyKey claims rec's (Scope, Key) for a request about to run (rec running, its
	// Claim, Fingerprint, CreatedAt, LeaseUntil and ExpiresAt set), atomically, in statements of its
	// own: it inserts rec when the pair has no record, or replaces the record found when that one's
	// ExpiresAt is at or before now, or when it is still running, its lease ended at or before now,
	// and its fingerprint is rec's (a crashed request's). Then it reports true. Otherwise it reports
	// false and the record found, which it leaves as it is. Of concurrent claims of one pair, on any
	// number of nodes, exactly one reports true.
	ClaimIdempotencyKey(ctx context.Context, rec *IdempotencyRecord, now time.Time) (bool, *IdempotencyRecord, error)
	// FinishIdempotencyKey stores the answer of the claimed request (its status, and the answer
	// sealed) and marks it done, only while claim still holds the running record: otherwise
	// ErrNotFound and nothing is written.
	FinishIdempotencyKey(ctx context.Context, scope, key, claim string, status int, answer []byte) error
	// ReleaseIdempotencyKey deletes the running record that claim holds, if it still does, so that
	// the request may run again (its first answer is not to be replayed).
	ReleaseIdempotencyKey(ctx context.Context, scope, key, claim string) error
	// PruneIdempotencyKeys deletes at most limit records whose ExpiresAt is at or before before and
	// says how many.
	PruneIdempotencyKeys(ctx context.Context, before time.Time, limit int) (int64, error)
	// IdempotencyAnswers returns up to limit done records that hold an answer, ordered by (Scope,
	// Key), after the pair (afterScope, afterKey): the master key rotation's read.
	IdempotencyAnswers(ctx context.Context, afterScope, afterKey string, limit int) ([]IdempotencyRecord, error)
	// ResealIdempotencyAnswer replaces a record's answer old by answer, only while it is still old:
	// otherwise ErrNotFound and nothing is written.
	ResealIdempotencyAnswer(ctx context.Context, scope, key string, old, answer []byte) error

	// ImportAPIKeys stores keys and their secrets in bulk, in one transaction: all or nothing, a
	// duplicate id or digest failing the whole import. It writes no audit entry and no event, checks
	// no workspace limit and tells no cache: it is for filling a store that nothing serves yet (the
	// load harness, keyplane bench, seeds a million keys with it), never for a change a workspace
	// should see in its audit trail.
	ImportAPIKeys(ctx context.Context, keys []keyplane.APIKey, secrets []keyplane.Secret) error

	// TakeCredits takes credits out of a limited balance, atomically, in one statement of its own
	// (no transaction, no chain lock: it is the slow path of verifications): when at least t.Need
	// are left, min(t.Want, remaining, remaining/t.ShareDivisor()) but at least t.Need, else none.
	// ErrNotFound when the account is absent or unlimited.
	TakeCredits(ctx context.Context, a keyplane.CreditAccount, t keyplane.CreditTake) (keyplane.CreditGrant, error)
	// ReturnCredits gives n credits back to a balance that is still at epoch, atomically, and reports
	// whether it did: credits taken before a set or a refill are not given back to the new balance.
	ReturnCredits(ctx context.Context, a keyplane.CreditAccount, n, epoch int64) (bool, error)

	// RunExclusive runs fn, and reports true, unless another run of the same name holds the database's
	// lock for it: then it reports false at once and fn does not run. The lock is the database's, so
	// that of several nodes sharing it one runs a periodic job and the others skip their turn; a node
	// that dies gives the lock up with its connection.
	RunExclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error)

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Driver names the implementation: "sqlite" or "postgres".
	Driver() string
	Close() error
}

// CountUsage sums entries into usage counts, one per key, hour and code: what AddUsage takes for
// them.
func CountUsage(entries []keyplane.RequestLog) []UsageCount {
	type bucket struct {
		keyID      string
		identityID string
		hour       int64
		code       keyplane.VerifyCode
	}
	index := map[bucket]int{}
	var out []UsageCount
	for i := range entries {
		e := &entries[i]
		hour := e.Timestamp.UTC().Truncate(time.Hour)
		b := bucket{e.KeyID, e.IdentityID, hour.Unix(), e.Code}
		if j, ok := index[b]; ok {
			out[j].Requests++
			out[j].CreditsSpent += e.CreditsSpent
			continue
		}
		index[b] = len(out)
		out = append(out, UsageCount{WorkspaceID: e.WorkspaceID, KeyID: e.KeyID, IdentityID: e.IdentityID, Hour: hour,
			Code: e.Code, Requests: 1, CreditsSpent: e.CreditsSpent})
	}
	return out
}

// IdempotencyRecord is what is kept of a request sent with an Idempotency-Key: who sent it (Scope,
// the credential and workspace), its key, the digest of what it asked (Fingerprint), and, once it is
// Done, its answer's status and the answer itself, sealed by the service. Claim identifies the run
// that holds a running record, until LeaseUntil; after ExpiresAt the record counts for nothing.
type IdempotencyRecord struct {
	Scope, Key  string
	Fingerprint []byte
	Claim       string
	Done        bool
	Status      int
	Answer      []byte
	CreatedAt   time.Time
	LeaseUntil  time.Time
	ExpiresAt   time.Time
}
