package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/throttle"
)

// Sign-in throttling: failures per account and per client address in a window. A blocked account or
// address is refused even with the right password until its window ends.
const (
	maxFailuresPerAccount = 5
	maxFailuresPerIP      = 20
	failureWindow         = 15 * time.Minute
)

// dummyHash is checked for unknown emails so that a sign-in takes as long whether or not the account
// exists (a service with other password parameters makes its own: Service.dummyHash).
const dummyHash = "$argon2id$v=19$m=65536,t=3,p=2$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG1aQ4rY8wq8M"

// SignInLimits holds the sign-in throttles and the bound on password hashes; nil fields get the
// defaults.
type SignInLimits struct {
	PerAccount throttle.Counter
	PerIP      throttle.Counter
	// Passwords bounds how many password hashes run at once, sign-ins and re-authentications
	// together: password.NewGate(password.Slots, password.SlotWait) by default.
	Passwords *password.Gate
}

// NewSignInLimits makes the sign-in throttles with counters from newCounter (kept in Redis, say,
// so that every node shares them); the numbers are the service's.
func NewSignInLimits(newCounter func(name string, max int, window time.Duration) throttle.Counter) SignInLimits {
	return SignInLimits{
		PerAccount: newCounter("account", maxFailuresPerAccount, failureWindow),
		PerIP:      newCounter("ip", maxFailuresPerIP, failureWindow),
	}
}

func (l *SignInLimits) fill(now func() time.Time) {
	if l.PerAccount == nil {
		l.PerAccount = throttle.New(maxFailuresPerAccount, failureWindow, 100_000, now)
	}
	if l.PerIP == nil {
		l.PerIP = throttle.New(maxFailuresPerIP, failureWindow, 100_000, now)
	}
	if l.Passwords == nil {
		l.Passwords = password.NewGate(password.Slots, password.SlotWait)
	}
}

// SessionToken hashes a session token to the digest the store keeps.
func SessionToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// throttleNetwork is what the per-address sign-in throttle counts: an IPv4 address, or an IPv6
// address's /64, which one subscriber usually holds whole and could otherwise walk through, a fresh
// budget per address.
func throttleNetwork(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}

// SignIn checks an email and password and opens a new session, whose token it returns. Failures and
// locks are audited in the operator's chain (see auditSignIn); the caller's IP and user agent are
// recorded with the session.
//
// An email with an account and one without do the same work at every step until the password is
// known to be right: one store read, the same two counter takes, the same audit writes (none, or one
// in the operator's chain), and a hash, against a dummy when there is no account, or none when a
// throttle refuses. Neither the answer nor its time tells which emails have accounts.
//
// Each attempt is counted against the address and the account before its password is hashed, in one
// atomic step each (throttle.Counter.Take), and given back when it succeeds or was never checked:
// attempts that arrive together cannot all be checked before the first failure is counted.
func (s *Service) SignIn(ctx context.Context, c *keyplane.Caller, email, pw string) (*keyplane.User, string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	network := throttleNetwork(c.IP)
	u, err := s.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, "", err
	}
	// The address first: a refused address counts nothing against the account, so that someone
	// locked out of their network's budget cannot go on locking others' accounts. An attempt the
	// account's lock refuses still counts against the address.
	if t := s.limits.PerIP.Take(ctx, network); !t.Allowed {
		if t.First {
			s.auditSignIn(ctx, c, u, email, "user.sign_in_throttled", "network")
		}
		return nil, "", tooMany(t.Wait, "from your network")
	}
	if t := s.limits.PerAccount.Take(ctx, email); !t.Allowed {
		if t.First {
			s.auditSignIn(ctx, c, u, email, "user.sign_in_throttled", "account")
		}
		return nil, "", tooMany(t.Wait, "for this account")
	}
	ok := false
	if len(pw) <= password.MaxLength {
		hash := s.dummyHash
		if u != nil && u.PasswordHash != "" {
			hash = u.PasswordHash
		}
		ok, err = s.checkPassword(ctx, hash, pw)
		if busy := s.busy(err); busy != nil {
			// Nothing was checked: the attempt is no failure.
			s.limits.PerIP.Give(ctx, network)
			s.limits.PerAccount.Give(ctx, email)
			return nil, "", busy
		}
		ok = ok && u != nil && u.PasswordHash != ""
	}
	if !ok {
		s.auditSignIn(ctx, c, u, email, "user.sign_in_failed", "")
		return nil, "", keyplane.Errorf(keyplane.CodeUnauthorized, "that email and password do not match an account")
	}
	s.limits.PerAccount.Reset(ctx, email)
	// The address's budget is not reset by a success: that would let anyone with an account of their
	// own refill the budget of the network they attack from.
	s.limits.PerIP.Give(ctx, network)
	token, sess := s.newSession(u, c)
	err = s.inTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.CreateSession(ctx, sess) })
	if err != nil {
		return nil, "", fmt.Errorf("create session: %w", err)
	}
	c.Actor = keyplane.Actor{Type: keyplane.ActorUser, ID: u.ID, Name: u.Email}
	s.auditSignIn(ctx, c, u, email, "user.signed_in", "")
	return u, token, nil
}

// busy maps a password check that did not run, because every hashing slot stayed taken or the
// request ended while it waited, to an unavailable answer with a Retry-After; nil when the check ran.
func (s *Service) busy(err error) error {
	if err == nil || !errors.Is(err, password.ErrBusy) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return &throttled{err: keyplane.Errorf(keyplane.CodeUnavailable, "too many passwords are being checked right now; try again in a few seconds"), wait: password.SlotWait}
}

func tooMany(wait time.Duration, where string) error {
	mins := int(wait.Round(time.Minute).Minutes())
	if mins < 1 {
		mins = 1
	}
	return &throttled{err: keyplane.Errorf(keyplane.CodeRateLimited, "too many failed sign-ins %s; try again in %s", where, plural(int64(mins), "minute")), wait: wait}
}

// throttled is a refusal of a sign-in throttle: a rate_limited error that also keeps the wait, which
// the message gives only in whole minutes, so that the answer can carry an exact Retry-After.
type throttled struct {
	err  *keyplane.Error
	wait time.Duration
}

func (e *throttled) Error() string { return e.err.Error() }
func (e *throttled) Unwrap() error { return e.err }

// RetryAfter is how long a sign-in refused by a throttle should wait; 0 for any other error.
func RetryAfter(err error) time.Duration {
	var t *throttled
	if errors.As(err, &t) {
		return t.wait
	}
	return 0
}

func (s *Service) newSession(u *keyplane.User, c *keyplane.Caller) (string, *keyplane.Session) {
	b := make([]byte, 32)
	rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	now := s.clock()
	return token, &keyplane.Session{
		Hash: SessionToken(token), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(keyplane.SessionLifetime),
		// Signing in does not count as re-entering the password: a session cookie taken right after
		// sign-in must not be enough to reveal a secret.
		ReauthAt: time.UnixMicro(0).UTC(), IP: c.IP, UserAgent: c.UserAgent,
	}
}

// auditSignIn writes a sign-in event to the operator's chain, and only there: signing in, failing to,
// and being locked out are the person's, not any workspace's, and a workspace must not learn where
// and when its members sign in, nor (through failures) who tries their accounts. lock names the
// lock of a user.sign_in_throttled entry ("account" or "network").
func (s *Service) auditSignIn(ctx context.Context, c *keyplane.Caller, u *keyplane.User, email, action, lock string) {
	rec := keyplane.AuditRecord{Action: action, Target: keyplane.Target{Type: "user"}, Changes: map[string]keyplane.Change{"email": {To: email}}}
	if lock != "" {
		rec.Changes["throttle"] = keyplane.Change{To: lock}
	}
	if c.Actor.Type == "" {
		c.Actor = keyplane.Actor{Type: keyplane.ActorUser, Name: email}
	}
	if u != nil {
		rec.Target.ID = u.ID
		if c.Actor.ID == "" {
			c.Actor.ID = u.ID
		}
	}
	if err := s.Audit(ctx, c, store.OperatorChain, rec); err != nil {
		s.log.ErrorContext(ctx, "audit sign-in", "err", err, "action", action)
	}
}

// SessionUser returns the person of a live session, or CodeUnauthorized.
func (s *Service) SessionUser(ctx context.Context, token string) (*keyplane.Session, *keyplane.User, error) {
	if token == "" || len(token) > 100 {
		return nil, nil, keyplane.Errorf(keyplane.CodeUnauthorized, "sign in")
	}
	sess, err := s.store.GetSession(ctx, SessionToken(token))
	if errors.Is(err, store.ErrNotFound) || err == nil && !s.clock().Before(sess.ExpiresAt) {
		return nil, nil, keyplane.Errorf(keyplane.CodeUnauthorized, "your session has ended; sign in again")
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := s.store.GetUser(ctx, sess.UserID)
	if err != nil {
		return nil, nil, notFound(err, "user")
	}
	return sess, u, nil
}

// SignOut ends a session. The session goes in the transaction of its audit entry: never one without
// the other, whenever the process dies.
func (s *Service) SignOut(ctx context.Context, c *keyplane.Caller, sess *keyplane.Session) error {
	return s.change(ctx, c, store.OperatorChain, func(tx store.Tx, _ time.Time) (*outcome, error) {
		if err := tx.DeleteSession(ctx, sess.Hash); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "user.signed_out", Target: keyplane.Target{Type: "user", ID: sess.UserID}}}, nil
	})
}

// Reauthenticate checks the signed-in person's password again, which lets them reveal secrets in
// c's workspace, and only there, for the next few minutes: the session keeps the workspace with the
// time, and the re-authentication is audited in that workspace's chain, whose reveals it opens.
// Failures count against the account's sign-in throttle, taken before the hash as SignIn does; an
// empty password is a form sent without one, answered as such and counted as nothing.
func (s *Service) Reauthenticate(ctx context.Context, c *keyplane.Caller, sess *keyplane.Session, u *keyplane.User, pw string) error {
	if pw == "" {
		return &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "enter your password",
			Details: []keyplane.FieldError{{Field: "password", Message: "is required"}}}
	}
	if t := s.limits.PerAccount.Take(ctx, u.Email); !t.Allowed {
		if t.First {
			s.auditSignIn(ctx, c, u, u.Email, "user.sign_in_throttled", "account")
		}
		return tooMany(t.Wait, "for this account")
	}
	ok := false
	if len(pw) <= password.MaxLength {
		var err error
		ok, err = s.checkPassword(ctx, u.PasswordHash, pw)
		if busy := s.busy(err); busy != nil {
			s.limits.PerAccount.Give(ctx, u.Email)
			return busy
		}
	}
	if !ok {
		return s.auditRefusal(ctx, c, c.WorkspaceID, keyplane.AuditRecord{Action: "user.reauth_failed", Target: keyplane.Target{Type: "user", ID: u.ID}},
			&keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "that password is not right",
				Details: []keyplane.FieldError{{Field: "password", Message: "is not right"}}})
	}
	s.limits.PerAccount.Reset(ctx, u.Email)
	// The session's new time is written with the audit entry that records it: a session that may
	// reveal secrets without an entry saying why is what a process dying between two transactions
	// left.
	updated := *sess
	err := s.change(ctx, c, c.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		updated.ReauthAt, updated.ReauthWorkspaceID = now, c.WorkspaceID
		if err := tx.UpdateSession(ctx, &updated); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "user.reauthenticated", Target: keyplane.Target{Type: "user", ID: u.ID}}}, nil
	})
	if err != nil {
		return err
	}
	*sess = updated
	c.Reauthenticated = true
	return nil
}

// Memberships lists the workspaces a person may open: all of them for an operator admin.
func (s *Service) Memberships(ctx context.Context, u *keyplane.User) ([]keyplane.Membership, error) {
	ms, err := s.store.ListMemberships(ctx, u.ID)
	if err != nil || !u.Operator {
		return ms, err
	}
	seen := map[string]bool{}
	for _, m := range ms {
		seen[m.Workspace.ID] = true
	}
	cursor := ""
	for {
		ws, next, err := s.store.ListWorkspaces(ctx, 100, cursor)
		if err != nil {
			return nil, err
		}
		for _, w := range ws {
			if !seen[w.ID] {
				ms = append(ms, keyplane.Membership{Workspace: w, Role: keyplane.RoleOwner})
			}
		}
		if next == "" {
			return ms, nil
		}
		cursor = next
	}
}

// PersonCaller is the caller for a signed-in person acting in a workspace: their role's permissions
// there, or everything for an operator admin. ok is false when they may not open the workspace.
func PersonCaller(u *keyplane.User, sess *keyplane.Session, ms []keyplane.Membership, wsID string, now time.Time) (*keyplane.Caller, bool) {
	c := &keyplane.Caller{
		Actor:       keyplane.Actor{Type: keyplane.ActorUser, ID: u.ID, Name: u.Email},
		WorkspaceID: wsID,
		// The password entered again opens reveals in the workspace it was entered in, not in the
		// person's others.
		Reauthenticated: sess.ReauthWorkspaceID == wsID && now.Sub(sess.ReauthAt) < keyplane.ReauthWindow,
	}
	for _, m := range ms {
		if m.Workspace.ID == wsID {
			c.Role = m.Role
		}
	}
	if u.Operator {
		c.Operator = true
		if c.Role == "" {
			c.Role = keyplane.RoleOwner
		}
	}
	if c.Role == "" {
		return nil, false
	}
	c.Permissions = keyplane.RolePermissions(c.Role)
	return c, true
}

// PruneSessions deletes sessions that have expired.
func (s *Service) PruneSessions(ctx context.Context) (int64, error) {
	var n int64
	err := s.store.InTx(ctx, store.OperatorChain, func(tx store.Tx) error {
		var err error
		n, err = tx.DeleteExpiredSessions(ctx, s.clock())
		return err
	})
	return n, err
}
