package webhook

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestGuard: a guarded client refuses, before connect(2), the documentation addresses that other
// tests use for "somewhere public", even where its policy allows private and public addresses
// alike; it resolves no name but localhost; and it keeps what it refused, which is how harnesses fail
// a test that tried to leave the machine. Loopback still works, by address and by localhost.
func TestGuard(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	g := &Guard{}
	c := NewClient(ClientOptions{Policy: devPolicy, Guard: g})
	t.Cleanup(c.Close)
	ctx := context.Background()
	for _, tc := range []struct{ url, refused string }{
		{"http://203.0.113.1:" + s.port() + "/", "203.0.113.1:" + s.port()},
		{"http://[2001:db8::1]:" + s.port() + "/", "[2001:db8::1]:" + s.port()},
		{"http://[::ffff:203.0.113.1]:" + s.port() + "/", "203.0.113.1:" + s.port()}, // dialled unmapped
		{"https://hooks.example.com/in", "hooks.example.com"},
	} {
		res := c.Post(ctx, tc.url, nil, nil)
		if !errors.Is(res.Err, ErrOffMachine) || res.StatusCode != 0 ||
			!strings.Contains(res.Err.Error(), "refused by the test guard: "+tc.refused+" is off this machine") {
			t.Errorf("Post(%s) = %d, %v; want the guard's refusal", tc.url, res.StatusCode, res.Err)
		}
	}
	want := []string{"203.0.113.1:" + s.port(), "[2001:db8::1]:" + s.port(), "203.0.113.1:" + s.port(), "hooks.example.com"}
	if got := g.Refused(); !slices.Equal(got, want) {
		t.Errorf("Refused() = %q, want %q", got, want)
	}
	// httptest listens on 127.0.0.1 only; ::1 is checked below, without a connection.
	for _, u := range []string{s.URL, "http://localhost:" + s.port()} {
		if res := c.Post(ctx, u, nil, nil); res.Err != nil || res.StatusCode != 200 {
			t.Errorf("Post(%s) = %d, %v; loopback must work", u, res.StatusCode, res.Err)
		}
	}
	for _, a := range []string{"127.0.0.1:80", "127.255.0.9:80", "[::1]:80", "[::ffff:127.0.0.1]:80"} {
		if err := c.dialer.Control("tcp", a, nil); err != nil {
			t.Errorf("Control(%s) = %v; loopback must pass", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:80", "[fe80::1%eth0]:80", "[::]:80", "0.0.0.0:80", "not-an-address:80"} {
		if err := c.dialer.Control("tcp", a, nil); !errors.Is(err, ErrOffMachine) {
			t.Errorf("Control(%s) = %v; want the guard's refusal", a, err)
		}
	}
	// The webhook URL check at creation resolves through the same Lookup.
	if err := devPolicy.CheckHost(ctx, g.Lookup, "hooks.example.com"); err == nil || !strings.Contains(err.Error(), "refused by the test guard") {
		t.Errorf("CheckHost(hooks.example.com) with the guard's Lookup = %v", err)
	}
	if err := devPolicy.CheckHost(ctx, g.Lookup, "LocalHost."); err != nil {
		t.Errorf("CheckHost(localhost) with the guard's Lookup = %v", err)
	}
}
