package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

func newPortalSession(w *keyplane.Workspace, id string, created time.Time) *keyplane.PortalSession {
	return &keyplane.PortalSession{
		ID: id, WorkspaceID: w.ID, Role: keyplane.RoleDeveloper,
		User:      keyplane.PortalUser{ID: "cust_42", Email: "ada@shop.example", Name: "Ada \"quoted\" é"},
		ReturnURL: "https://shop.example/settings/api", CreatedAt: created, LinkExpiresAt: created.Add(5 * time.Minute),
		CreatedBy: keyplane.Actor{Type: keyplane.ActorRootKey, ID: "rk_test", Name: "platform"},
	}
}

func testPortalSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "portal", at(0))
	link, sessHash := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	ps := newPortalSession(w, "ps_one", elsewhere(at(0)))
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.InsertPortalSession(ctx, ps, link) })
	want := *ps
	want.CreatedAt, want.LinkExpiresAt = at(0), at(5*time.Minute)
	got, err := s.GetPortalLink(ctx, link)
	noErr(t, "GetPortalLink", err)
	equal(t, "GetPortalLink", got, &want)
	_, err = s.GetPortalSession(ctx, sessHash)
	wantErr(t, "GetPortalSession(not opened)", err, store.ErrNotFound)

	// The same digest, or the same id, twice.
	other := newPortalSession(w, "ps_other", at(0))
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertPortalSession(ctx, other, link) })
	wantErr(t, "InsertPortalSession(same digest)", err, store.ErrConflict)
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertPortalSession(ctx, ps, bytes.Repeat([]byte{9}, 32)) })
	wantErr(t, "InsertPortalSession(same id)", err, store.ErrConflict)

	// Ending a session that was never opened matches nothing.
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.EndPortalSession(ctx, w.ID, ps.ID, at(time.Minute)) })
	wantErr(t, "EndPortalSession(not opened)", err, store.ErrNotFound)

	// A link used at its expiry is past it.
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error {
		_, err := tx.OpenPortalLink(ctx, link, sessHash, ps.LinkExpiresAt, at(time.Hour), "", "")
		return err
	})
	wantErr(t, "OpenPortalLink(at expiry)", err, store.ErrNotFound)

	// Opened once.
	var opened *keyplane.PortalSession
	inTx(t, s, w.ID, func(tx store.Tx) error {
		var err error
		opened, err = tx.OpenPortalLink(ctx, link, sessHash, at(time.Minute), at(time.Hour+time.Minute), "2001:db8::1", "Firefox/140")
		return err
	})
	want.OpenedAt, want.ExpiresAt, want.IP, want.UserAgent = at(time.Minute), at(time.Hour+time.Minute), "2001:db8::1", "Firefox/140"
	equal(t, "OpenPortalLink", opened, &want)
	got, err = s.GetPortalSession(ctx, sessHash)
	noErr(t, "GetPortalSession", err)
	equal(t, "GetPortalSession", got, &want)
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error {
		_, err := tx.OpenPortalLink(ctx, link, bytes.Repeat([]byte{3}, 32), at(2*time.Minute), at(time.Hour), "", "")
		return err
	})
	wantErr(t, "OpenPortalLink(twice)", err, store.ErrNotFound)
	_, err = s.GetPortalSession(ctx, bytes.Repeat([]byte{3}, 32))
	wantErr(t, "session of a second opening", err, store.ErrNotFound)
	_, err = s.GetPortalLink(ctx, bytes.Repeat([]byte{4}, 32))
	wantErr(t, "GetPortalLink(unknown)", err, store.ErrNotFound)

	// Ended once, in its own workspace only.
	err = s.InTx(ctx, "ws_other", func(tx store.Tx) error { return tx.EndPortalSession(ctx, "ws_other", ps.ID, at(2*time.Minute)) })
	wantErr(t, "EndPortalSession(other workspace)", err, store.ErrNotFound)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.EndPortalSession(ctx, w.ID, ps.ID, at(2*time.Minute)) })
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.EndPortalSession(ctx, w.ID, ps.ID, at(3*time.Minute)) })
	wantErr(t, "EndPortalSession(twice)", err, store.ErrNotFound)
	want.EndedAt = at(2 * time.Minute)
	got, err = s.GetPortalSession(ctx, sessHash)
	noErr(t, "GetPortalSession after end", err)
	equal(t, "ended session", got, &want)

	t.Run("OpenedOnceConcurrently", func(t *testing.T) {
		link := bytes.Repeat([]byte{5}, 32)
		inTx(t, s, w.ID, func(tx store.Tx) error {
			return tx.InsertPortalSession(ctx, newPortalSession(w, "ps_race", at(0)), link)
		})
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				errs[i] = s.InTx(ctx, w.ID, func(tx store.Tx) error {
					_, err := tx.OpenPortalLink(ctx, link, bytes.Repeat([]byte{byte(10 + i)}, 32), at(time.Minute), at(time.Hour), "", "")
					return err
				})
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
				continue
			}
			wantErr(t, "a losing OpenPortalLink", errs[i], store.ErrNotFound)
		}
		if won != 1 {
			t.Fatalf("%d openings of one link succeeded, want 1", won)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		w := createWorkspace(t, s, "portal-prune", at(0))
		// The prune's line: a day before now.
		before := at(0)
		cases := []struct {
			id              string
			linkExpires     time.Time
			opened, expires time.Time
			ended           time.Time
			gone            bool
		}{
			{id: "ps_unused_old", linkExpires: at(-time.Minute), gone: true},
			{id: "ps_unused_live", linkExpires: at(time.Minute)},
			{id: "ps_expired_old", linkExpires: at(-2 * time.Hour), opened: at(-3 * time.Hour), expires: at(-time.Hour), gone: true},
			{id: "ps_ended_old", linkExpires: at(-2 * time.Hour), opened: at(-3 * time.Hour), expires: at(time.Hour), ended: at(-time.Hour), gone: true},
			{id: "ps_session_live", linkExpires: at(-2 * time.Hour), opened: at(-3 * time.Hour), expires: at(time.Hour)},
			{id: "ps_ended_recent", linkExpires: at(-2 * time.Hour), opened: at(-3 * time.Hour), expires: at(time.Hour), ended: at(time.Minute)},
		}
		for i, c := range cases {
			ps := newPortalSession(w, c.id, c.linkExpires.Add(-10*time.Hour))
			ps.LinkExpiresAt = c.linkExpires
			lh, sh := bytes.Repeat([]byte{byte(100 + i)}, 32), bytes.Repeat([]byte{byte(200 + i)}, 32)
			inTx(t, s, w.ID, func(tx store.Tx) error {
				if err := tx.InsertPortalSession(ctx, ps, lh); err != nil || c.opened.IsZero() {
					return err
				}
				if _, err := tx.OpenPortalLink(ctx, lh, sh, c.linkExpires.Add(-time.Minute), c.expires, "", ""); err != nil {
					return err
				}
				if c.ended.IsZero() {
					return nil
				}
				return tx.EndPortalSession(ctx, w.ID, c.id, c.ended)
			})
		}
		var n int64
		inTx(t, s, w.ID, func(tx store.Tx) error {
			var err error
			n, err = tx.DeletePortalSessions(ctx, before)
			return err
		})
		if n != 3 {
			t.Errorf("DeletePortalSessions removed %d, want 3", n)
		}
		for i, c := range cases {
			_, err := s.GetPortalLink(ctx, bytes.Repeat([]byte{byte(100 + i)}, 32))
			if c.gone {
				wantErr(t, c.id+" after prune", err, store.ErrNotFound)
			} else {
				noErr(t, c.id+" after prune", err)
			}
		}
	})
}

func testWorkspaceBranding(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace("branded", at(0))
	w.Branding = keyplane.Branding{Name: "Shop \"é\"", AccentColor: "#0a66c2", LogoURL: "https://shop.example/logo.svg"}
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, w) })
	got, err := s.GetWorkspace(ctx, w.ID)
	noErr(t, "GetWorkspace", err)
	equal(t, "branded workspace", got, w)

	u := *w
	u.Branding = keyplane.Branding{}
	u.UpdatedAt = at(time.Hour)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, &u) })
	got, err = s.GetWorkspaceBySlug(ctx, w.Slug)
	noErr(t, "GetWorkspaceBySlug", err)
	equal(t, "workspace without branding", got, &u)

	u.Branding.AccentColor = "#112233"
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, &u) })
	ws, _, err := s.ListWorkspaces(ctx, 10, "")
	noErr(t, "ListWorkspaces", err)
	equal(t, "listed workspace", ws[0].Branding, u.Branding)
}
