package service_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

func linkToken(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || !strings.HasPrefix(p.Path, "/portal/") {
		t.Fatalf("portal URL %q", u)
	}
	return strings.TrimPrefix(p.Path, "/portal/")
}

func TestPortalSessions(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			clock := &fakeClock{now: time.Now().UTC()}
			svc, st := servicetest.Open(t, d, service.Options{Now: clock.Now, PublicURL: "https://keys.example.com/",
				PortalSessionTTL: 30 * time.Minute})
			ctx := context.Background()
			w := shop(t, svc)
			root := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorRootKey, ID: "rk_1", Name: "platform"}, Operator: true}
			req := service.PortalRequest{User: keyplane.PortalUser{ID: "cust_42", Email: "ada@shop.example"}, Role: keyplane.RoleAdmin,
				ReturnURL: "https://shop.example/settings"}

			link, err := svc.CreatePortalSession(ctx, root, w.ID, req)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(link.URL, "https://keys.example.com/portal/kp_portal_") || len(linkToken(t, link.URL)) != 53 {
				t.Fatalf("link URL %q", link.URL)
			}
			if got := link.ExpiresAt.Sub(clock.Now()); got < 4*time.Minute || got > 5*time.Minute {
				t.Errorf("the link lives %v, want the default 5 minutes", got)
			}
			token := linkToken(t, link.URL)
			// Only the digest is stored.
			if _, err := st.GetPortalLink(ctx, []byte(token)); err == nil {
				t.Fatal("the token itself finds the link")
			}

			browser := &keyplane.Caller{IP: "192.0.2.7", UserAgent: "Chromium", RequestID: "req_1"}
			sessTok, ps, err := svc.OpenPortalLink(ctx, browser, token)
			if err != nil || !strings.HasPrefix(sessTok, "kp_portal_") || sessTok == token {
				t.Fatalf("open: %q %v", sessTok, err)
			}
			if ps.WorkspaceID != w.ID || ps.Role != keyplane.RoleAdmin || ps.IP != "192.0.2.7" || ps.ReturnURL != req.ReturnURL ||
				ps.ExpiresAt.Sub(ps.OpenedAt) != 30*time.Minute || ps.CreatedBy.ID != "rk_1" {
				t.Errorf("opened session %+v", ps)
			}
			if browser.Actor.Type != "" {
				t.Errorf("OpenPortalLink changed its caller's actor: %+v", browser.Actor)
			}

			// Used once.
			_, again, err := svc.OpenPortalLink(ctx, browser, token)
			if keyplane.ErrorCode(err) != keyplane.CodePortalLinkEnded || again == nil || again.ReturnURL != req.ReturnURL {
				t.Fatalf("second opening: %v %+v", err, again)
			}
			// Forged: the shape, or an unknown token of the right shape.
			// The last character changed: to another one, whatever the token's was (1 in 64 ends in A).
			last := "A"
			if strings.HasSuffix(token, last) {
				last = "Q"
			}
			for _, forged := range []string{"", "kp_portal_x", token[:len(token)-1] + last, strings.Replace(token, "kp_portal_", "kp_portaL_", 1), sessTok} {
				if _, ps, err := svc.OpenPortalLink(ctx, browser, forged); keyplane.ErrorCode(err) != keyplane.CodeNotFound || ps != nil {
					t.Errorf("forged link %q: %v %+v", forged, err, ps)
				}
			}

			live, ws, err := svc.PortalSessionOf(ctx, sessTok)
			if err != nil || live.ID != ps.ID || ws.ID != w.ID {
				t.Fatalf("PortalSessionOf: %v", err)
			}
			if _, _, err := svc.PortalSessionOf(ctx, token); keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
				t.Errorf("the link's token as a session: %v", err)
			}

			c := service.PortalCaller(live, clock.Now())
			if !c.Portal || c.Operator || c.WorkspaceID != w.ID || c.Actor != (keyplane.Actor{Type: keyplane.ActorPortalUser, ID: "cust_42", Name: "ada@shop.example"}) ||
				!c.Reauthenticated || c.Role != keyplane.RoleAdmin {
				t.Errorf("portal caller %+v", c)
			}
			want := []string{keyplane.PermAPIKeysRead, keyplane.PermAPIKeysWrite, keyplane.PermWebhooksRead, keyplane.PermWebhooksWrite, keyplane.PermEventsWrite, keyplane.PermLogsRead}
			if strings.Join(c.Permissions, ",") != strings.Join(want, ",") {
				t.Errorf("admin portal permissions %v, want %v", c.Permissions, want)
			}
			if c := service.PortalCaller(live, live.OpenedAt.Add(keyplane.ReauthWindow)); c.Reauthenticated {
				t.Error("reveals open after the window")
			}
			// A portal caller makes no links, whatever it holds.
			c.Permissions = append(c.Permissions, keyplane.PermPortalWrite)
			if _, err := svc.CreatePortalSession(ctx, c, w.ID, req); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
				t.Errorf("a portal caller made a link: %v", err)
			}

			// Ended once, audited once; the ended session answers with itself for its return URL.
			end := service.PortalCaller(live, clock.Now())
			if err := svc.EndPortalSession(ctx, end, live); err != nil || live.EndedAt.IsZero() {
				t.Fatalf("end: %v", err)
			}
			if err := svc.EndPortalSession(ctx, end, live); err != nil {
				t.Fatalf("end twice: %v", err)
			}
			if ps, _, err := svc.PortalSessionOf(ctx, sessTok); keyplane.ErrorCode(err) != keyplane.CodeUnauthorized || ps == nil || ps.ReturnURL != req.ReturnURL {
				t.Errorf("ended session: %v %+v", err, ps)
			}

			entries, _, err := svc.ListAudit(ctx, root, w.ID, keyplane.AuditFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, e := range entries {
				if strings.HasPrefix(e.Action, "portal_session.") {
					actions = append(actions, e.Action+"/"+e.ActorID)
				}
			}
			if got := strings.Join(actions, " "); got != "portal_session.ended/cust_42 portal_session.opened/cust_42 portal_session.created/rk_1" {
				t.Errorf("portal audit entries: %s", got)
			}
			if r, err := svc.VerifyAudit(ctx, root, w.ID); err != nil || !r.Valid {
				t.Errorf("chain: %+v %v", r, err)
			}

			// A session past its TTL has ended.
			link2, err := svc.CreatePortalSession(ctx, root, w.ID, service.PortalRequest{User: keyplane.PortalUser{ID: "u2", Name: "Bo"}, Role: keyplane.RoleViewer, ExpiresIn: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			tok2, ps2, err := svc.OpenPortalLink(ctx, browser, linkToken(t, link2.URL))
			if err != nil {
				t.Fatal(err)
			}
			if c := service.PortalCaller(ps2, clock.Now()); strings.Join(c.Permissions, ",") != "webhooks:read,logs:read" || c.Actor.Name != "Bo" {
				t.Errorf("viewer portal caller %+v", c)
			}
			clock.Add(30 * time.Minute)
			if _, _, err := svc.PortalSessionOf(ctx, tok2); keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
				t.Errorf("session past its TTL: %v", err)
			}

			// A link opened after its expiry.
			link3, err := svc.CreatePortalSession(ctx, root, w.ID, service.PortalRequest{User: keyplane.PortalUser{ID: "u3"}, Role: keyplane.RoleDeveloper, ExpiresIn: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			clock.Add(time.Minute)
			if _, ps, err := svc.OpenPortalLink(ctx, browser, linkToken(t, link3.URL)); keyplane.ErrorCode(err) != keyplane.CodePortalLinkEnded || ps == nil {
				t.Errorf("expired link: %v", err)
			}

			// The prune keeps a day of ended rows.
			if n, err := svc.PrunePortalSessions(ctx); err != nil || n != 0 {
				t.Errorf("prune at once: %d %v", n, err)
			}
			clock.Add(25 * time.Hour)
			if n, err := svc.PrunePortalSessions(ctx); err != nil || n != 3 {
				t.Errorf("prune a day later: %d %v, want 3", n, err)
			}
		})
	}
}

func TestPortalSessionOpenedOnce(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			svc, _ := servicetest.Open(t, d, service.Options{PublicURL: "http://127.0.0.1:1"})
			ctx := context.Background()
			w := shop(t, svc)
			link, err := svc.CreatePortalSession(ctx, keyplane.System("test"), w.ID, service.PortalRequest{User: keyplane.PortalUser{ID: "u"}, Role: keyplane.RoleViewer})
			if err != nil {
				t.Fatal(err)
			}
			token := linkToken(t, link.URL)
			var wg sync.WaitGroup
			var won, ended atomic.Int32
			for range 6 {
				wg.Go(func() {
					_, _, err := svc.OpenPortalLink(ctx, &keyplane.Caller{}, token)
					switch keyplane.ErrorCode(err) {
					case keyplane.CodePortalLinkEnded:
						ended.Add(1)
					default:
						if err == nil {
							won.Add(1)
						} else {
							t.Errorf("open: %v", err)
						}
					}
				})
			}
			wg.Wait()
			if won.Load() != 1 || ended.Load() != 5 {
				t.Fatalf("%d openings won, %d ended; want 1 and 5", won.Load(), ended.Load())
			}
		})
	}
}

func TestCreatePortalSessionRefusals(t *testing.T) {
	svc, _ := servicetest.Open(t, "sqlite", service.Options{PublicURL: "http://127.0.0.1:1"})
	ctx := context.Background()
	w := shop(t, svc)
	other := func() *keyplane.Workspace {
		o, err := svc.CreateWorkspace(ctx, keyplane.System("test"), service.WorkspaceInput{Name: "Other", Slug: "other"})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}()
	ok := service.PortalRequest{User: keyplane.PortalUser{ID: "u"}, Role: keyplane.RoleDeveloper}
	key := func(wsID string, perms ...string) *keyplane.Caller {
		return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "apk_1"}, WorkspaceID: wsID, Permissions: perms}
	}
	if _, err := svc.CreatePortalSession(ctx, key(w.ID, keyplane.PermPortalWrite), w.ID, ok); err != nil {
		t.Errorf("a workspace key with portal:write: %v", err)
	}
	if _, err := svc.CreatePortalSession(ctx, key(w.ID, keyplane.PermAPIKeysWrite), w.ID, ok); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
		t.Errorf("a workspace key without portal:write: %v", err)
	}
	if _, err := svc.CreatePortalSession(ctx, key(w.ID, keyplane.PermPortalWrite), other.ID, ok); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		t.Errorf("a key of another workspace: %v", err)
	}
	if _, err := svc.CreatePortalSession(ctx, keyplane.System("test"), "ws_missing", ok); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		t.Errorf("an unknown workspace: %v", err)
	}
	long := strings.Repeat("x", 256)
	for _, c := range []struct {
		name  string
		req   service.PortalRequest
		field string
	}{
		{"NoUserID", service.PortalRequest{Role: keyplane.RoleViewer}, "user.id"},
		{"LongUserID", service.PortalRequest{User: keyplane.PortalUser{ID: long}, Role: keyplane.RoleViewer}, "user.id"},
		{"ControlInUserID", service.PortalRequest{User: keyplane.PortalUser{ID: "a\nb"}, Role: keyplane.RoleViewer}, "user.id"},
		{"BadEmail", service.PortalRequest{User: keyplane.PortalUser{ID: "u", Email: "Ada <ada@x.example>"}, Role: keyplane.RoleViewer}, "user.email"},
		{"LongName", service.PortalRequest{User: keyplane.PortalUser{ID: "u", Name: long}, Role: keyplane.RoleViewer}, "user.name"},
		{"Owner", service.PortalRequest{User: keyplane.PortalUser{ID: "u"}, Role: keyplane.RoleOwner}, "role"},
		{"NoRole", service.PortalRequest{User: keyplane.PortalUser{ID: "u"}}, "role"},
		{"ReturnURLScheme", service.PortalRequest{User: keyplane.PortalUser{ID: "u"}, Role: keyplane.RoleViewer, ReturnURL: "javascript:alert(1)"}, "returnUrl"},
		{"ReturnURLRelative", service.PortalRequest{User: keyplane.PortalUser{ID: "u"}, Role: keyplane.RoleViewer, ReturnURL: "/settings"}, "returnUrl"},
		{"ReturnURLLong", service.PortalRequest{User: keyplane.PortalUser{ID: "u"}, Role: keyplane.RoleViewer, ReturnURL: "https://x.example/" + strings.Repeat("a", 2048)}, "returnUrl"},
		{"ShortLink", service.PortalRequest{User: keyplane.PortalUser{ID: "u"}, Role: keyplane.RoleViewer, ExpiresIn: 59 * time.Second}, "expiresInSeconds"},
		{"LongLink", service.PortalRequest{User: keyplane.PortalUser{ID: "u"}, Role: keyplane.RoleViewer, ExpiresIn: time.Hour + time.Second}, "expiresInSeconds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := svc.CreatePortalSession(ctx, keyplane.System("test"), w.ID, c.req)
			var e *keyplane.Error
			if keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest || !errors.As(err, &e) || len(e.Details) != 1 || e.Details[0].Field != c.field {
				t.Errorf("got %v, want invalid %s", err, c.field)
			}
		})
	}
}

func TestWorkspaceBranding(t *testing.T) {
	svc, _ := servicetest.Open(t, "sqlite", service.Options{})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	in := service.BrandingInput{Name: keyplane.Some(" Shop "), AccentColor: keyplane.Some("#A0B1C2"), LogoURL: keyplane.Some("https://shop.example/logo.png")}
	got, err := svc.UpdateWorkspace(ctx, sys, w.ID, service.WorkspacePatch{Branding: keyplane.Some(in)})
	want := keyplane.Branding{Name: "Shop", AccentColor: "#a0b1c2", LogoURL: "https://shop.example/logo.png"}
	if err != nil || got.Branding != want {
		t.Fatalf("branding: %+v %v, want %+v", got, err, want)
	}
	entries, _, err := svc.ListAudit(ctx, sys, w.ID, keyplane.AuditFilter{Action: "workspace.updated", Limit: 10})
	if err != nil || len(entries) != 1 || !strings.Contains(string(entries[0].Body), `"branding":{"from":null,"to":{"accentColor":"#a0b1c2"`) {
		t.Fatalf("audit of the branding: %v %v", entries, err)
	}
	// A workspace made without one names none in its creation's entry.
	created, _, err := svc.ListAudit(ctx, sys, w.ID, keyplane.AuditFilter{Action: "workspace.created", Limit: 10})
	if err != nil || len(created) != 1 || strings.Contains(string(created[0].Body), "branding") {
		t.Errorf("creation entry: %v %v", created, err)
	}
	_, err = svc.UpdateWorkspace(ctx, sys, w.ID, service.WorkspacePatch{Branding: keyplane.Some(service.BrandingInput{
		Name: keyplane.Some("\u202Eevil"), AccentColor: keyplane.Some("#fff"), LogoURL: keyplane.Some("https://user:pw@shop.example/logo.png")})})
	var e *keyplane.Error
	if !errors.As(err, &e) || len(e.Details) != 3 {
		t.Fatalf("three bad fields: %v", err)
	}
	if got, err := svc.UpdateWorkspace(ctx, sys, w.ID, service.WorkspacePatch{Branding: keyplane.Optional[service.BrandingInput]{Set: true, Null: true}}); err != nil || got.Branding != (keyplane.Branding{}) {
		t.Errorf("branding cleared: %+v %v", got, err)
	}
}
