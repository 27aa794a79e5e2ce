package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
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

	sess, err := servicetest.AttachDB(t, s.dataDir, s.dbURL).GetSession(context.Background(), service.SessionToken(c.Value))
	if err != nil {
		t.Fatalf("read the session: %v", err)
	}
	if sess.UserAgent != want || !utf8.ValidString(sess.UserAgent) {
		t.Errorf("the session keeps the User-Agent %q (%d bytes), want %q (%d bytes)", sess.UserAgent, len(sess.UserAgent), want, len(want))
	}
}
