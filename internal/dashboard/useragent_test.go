package dashboard_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/sqlite"
)

// testSignInOddUserAgent: a browser's User-Agent is whatever bytes it sends. One that is not UTF-8,
// and longer than is kept, still signs in, on PostgreSQL too, which refuses text that is not UTF-8:
// the session keeps it as valid UTF-8, cut on a character boundary.
func testSignInOddUserAgent(t *testing.T, s *kpServer) {
	// 19 bytes, then 2-byte characters: byte 512 falls inside one.
	ua := "keyplane-test/1.0 \xff" + strings.Repeat("é", 300)
	want := "keyplane-test/1.0 \uFFFD" + strings.Repeat("é", 245) // 511 bytes

	p := s.newPerson(emails["admin"])
	e := p.login(t, p.email, thePassword, "/status", "User-Agent", ua)
	expectRedirect(t, e, "/status")
	c := e.cookie("kp_session")
	if c == nil || c.Value == "" {
		t.Fatalf("no session cookie: %v", e.cookies)
	}
	expect(t, p.get(t, "/status", "User-Agent", ua), http.StatusOK)

	st := s.openStore(t)
	sess, err := st.GetSession(context.Background(), service.SessionToken(c.Value))
	if err != nil {
		t.Fatalf("read the session: %v", err)
	}
	if sess.UserAgent != want || !utf8.ValidString(sess.UserAgent) {
		t.Errorf("the session keeps the User-Agent %q (%d bytes), want %q (%d bytes)", sess.UserAgent, len(sess.UserAgent), want, len(want))
	}
}

// openStore opens the running program's store beside it, closed when the test ends.
func (s *kpServer) openStore(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if s.dbURL != "" {
		st, err = postgres.Open(ctx, s.dbURL)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(s.dataDir, "keyplane.db"))
	}
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
