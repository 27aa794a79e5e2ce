package dashboard_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestLeakBanner: a key found leaked shows, on its page, an alert naming where it was found, when, and
// what was done; a key never reported shows none. The url is escaped, and a javascript: one is no link.
func TestLeakBanner(t *testing.T) {
	s := startKP(t, "sqlite")
	leaked, value := s.restKey(t, "default", map[string]any{"name": "leaky", "keyType": "secret"})
	clean, _ := s.restKey(t, "default", map[string]any{"name": "clean", "keyType": "secret"})
	odd, oddValue := s.restKey(t, "default", map[string]any{"name": "odd", "keyType": "secret"})
	for _, r := range []map[string]any{
		{"keys": []string{value}, "source": "our-scanner", "url": "https://paste.example/abc?x=<b>"},
		{"keys": []string{oddValue}, "source": "s", "url": "javascript:alert(1)"},
	} {
		if st, body := s.call(t, s.admin, "POST", "/v1/leaks", "", r); st != 200 {
			t.Fatalf("report: %d %v", st, body)
		}
	}
	p := s.as(t, "wsadmin")
	e := p.get(t, "/w/default/settings/api/"+leaked)
	expect(t, e, http.StatusOK)
	for _, want := range []string{`role="alert"`, `id="leak-banner"`, "This key was found leaked",
		`href="https://paste.example/abc?x=%3cb%3e"`, "our-scanner", "the key was revoked", " UTC"} {
		if !strings.Contains(e.body, want) {
			t.Errorf("the leaked key's page lacks %q:\n%s", want, e.body)
		}
	}
	if strings.Contains(e.body, "<b>") {
		t.Error("the url was not escaped")
	}
	e = p.get(t, "/w/default/settings/api/"+odd)
	expect(t, e, http.StatusOK)
	if strings.Contains(e.body, `href="javascript`) || !strings.Contains(e.body, "javascript:alert(1)") {
		t.Errorf("a javascript: url: %s", e.body)
	}
	e = p.get(t, "/w/default/settings/api/"+clean)
	expect(t, e, http.StatusOK)
	if strings.Contains(e.body, "leak-banner") {
		t.Error("a key never reported shows the leak banner")
	}
}
