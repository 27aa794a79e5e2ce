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
// exists.
const dummyHash = "$argon2id$v=19$m=65536,t=3,p=2$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG1aQ4rY8wq8M"

// SignInLimits holds the sign-in throttles; nil fields get the defaults.
type SignInLimits struct {
	PerAccount throttle.Counter
	PerIP      throttle.Counter
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

// SignIn checks an email and password and opens a new session, whose token it returns. Every attempt is
// audited; the caller's IP and user agent are recorded with the session.
func (s *Service) SignIn(ctx context.Context, c *keyplane.Caller, email, pw string) (*keyplane.User, string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	network := throttleNetwork(c.IP)
	if blocked, wait := s.limits.PerIP.Blocked(ctx, network); blocked {
		return nil, "", tooMany(wait, "from your network")
	}
	u, err := s.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, "", err
	}
	if blocked, wait := s.limits.PerAccount.Blocked(ctx, email); blocked {
		s.auditSignIn(ctx, c, u, email, "user.sign_in_throttled")
		return nil, "", tooMany(wait, "for this account")
	}
	ok := false
	if len(pw) <= password.MaxLength {
		hash := dummyHash
		if u != nil && u.PasswordHash != "" {
			hash = u.PasswordHash
		}
		ok, _ = password.Check(hash, pw)
		ok = ok && u != nil && u.PasswordHash != ""
	}
	if !ok {
		s.limits.PerAccount.Fail(ctx, email)
		s.limits.PerIP.Fail(ctx, network)
		s.auditSignIn(ctx, c, u, email, "user.sign_in_failed")
		return nil, "", keyplane.Errorf(keyplane.CodeUnauthorized, "that email and password do not match an account")
	}
	s.limits.PerAccount.Reset(ctx, email)
	token, sess := s.newSession(u, c)
	err = s.store.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.CreateSession(ctx, sess) })
	if err != nil {
		return nil, "", fmt.Errorf("create session: %w", err)
	}
	c.Actor = keyplane.Actor{Type: keyplane.ActorUser, ID: u.ID, Name: u.Email}
	s.auditSignIn(ctx, c, u, email, "user.signed_in")
	return u, token, nil
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

// auditSignIn writes a sign-in event to every workspace the person belongs to, so that each
// workspace's trail shows who entered it, and to the operator's chain.
func (s *Service) auditSignIn(ctx context.Context, c *keyplane.Caller, u *keyplane.User, email, action string) {
	rec := keyplane.AuditRecord{Action: action, Target: keyplane.Target{Type: "user"}, Changes: map[string]keyplane.Change{"email": {To: email}}}
	if c.Actor.Type == "" {
		c.Actor = keyplane.Actor{Type: keyplane.ActorUser, Name: email}
	}
	chains := []string{store.OperatorChain}
	if u != nil {
		rec.Target.ID = u.ID
		if c.Actor.ID == "" {
			c.Actor.ID = u.ID
		}
		ms, err := s.store.ListMemberships(ctx, u.ID)
		if err == nil {
			for _, m := range ms {
				chains = append(chains, m.Workspace.ID)
			}
		}
	}
	for _, ch := range chains {
		if err := s.Audit(ctx, c, ch, rec); err != nil {
			s.log.ErrorContext(ctx, "audit sign-in", "err", err, "action", action)
		}
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

// Reauthenticate checks the signed-in person's password again, which lets them reveal secrets for the
// next few minutes. Failures count against the account's sign-in throttle.
func (s *Service) Reauthenticate(ctx context.Context, c *keyplane.Caller, sess *keyplane.Session, u *keyplane.User, pw string) error {
	if blocked, wait := s.limits.PerAccount.Blocked(ctx, u.Email); blocked {
		return tooMany(wait, "for this account")
	}
	ok, _ := password.Check(u.PasswordHash, pw)
	if !ok || len(pw) > password.MaxLength {
		s.limits.PerAccount.Fail(ctx, u.Email)
		_ = s.Audit(ctx, c, c.WorkspaceID, keyplane.AuditRecord{Action: "user.reauth_failed", Target: keyplane.Target{Type: "user", ID: u.ID}})
		return &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "that password is not right",
			Details: []keyplane.FieldError{{Field: "password", Message: "is not right"}}}
	}
	// The session's new time is written with the audit entry that records it: a session that may
	// reveal secrets without an entry saying why is what a process dying between two transactions
	// left.
	updated := *sess
	err := s.change(ctx, c, c.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		updated.ReauthAt = now
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
		Actor:           keyplane.Actor{Type: keyplane.ActorUser, ID: u.ID, Name: u.Email},
		WorkspaceID:     wsID,
		Reauthenticated: now.Sub(sess.ReauthAt) < keyplane.ReauthWindow,
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
