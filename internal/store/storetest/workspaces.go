package storetest

import (
	"encoding/base64"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

func testWorkspaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newWorkspace("acme", at(0))
	a.MaxKeys, a.TestKeyTTLSeconds = 7, 3600
	b := newWorkspace("globex", at(time.Second))
	b.LiveModeEnabled = false
	b.UpdatedAt = at(2 * time.Second)

	// Given in another zone, given back in UTC.
	in := *a
	in.CreatedAt, in.UpdatedAt = elsewhere(a.CreatedAt), elsewhere(a.UpdatedAt)
	inTx(t, s, a.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, &in) })
	inTx(t, s, b.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, b) })

	for _, w := range []*keyplane.Workspace{a, b} {
		got, err := s.GetWorkspace(ctx, w.ID)
		noErr(t, "GetWorkspace", err)
		equal(t, "GetWorkspace", got, w)
		got, err = s.GetWorkspaceBySlug(ctx, w.Slug)
		noErr(t, "GetWorkspaceBySlug", err)
		equal(t, "GetWorkspaceBySlug", got, w)
	}
	_, err := s.GetWorkspace(ctx, id.NewAt(id.Workspace, at(0)))
	wantErr(t, "GetWorkspace(unknown)", err, store.ErrNotFound)
	_, err = s.GetWorkspaceBySlug(ctx, "nope")
	wantErr(t, "GetWorkspaceBySlug(unknown)", err, store.ErrNotFound)
	_, err = s.GetWorkspaceBySlug(ctx, "ACME")
	wantErr(t, "GetWorkspaceBySlug(other case)", err, store.ErrNotFound)

	t.Run("CreateConflicts", func(t *testing.T) {
		sameSlug := newWorkspace(a.Slug, at(time.Minute))
		err := s.InTx(ctx, sameSlug.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, sameSlug) })
		wantErr(t, "CreateWorkspace(taken slug)", err, store.ErrConflict)
		sameID := newWorkspace("fresh", at(time.Minute))
		sameID.ID = a.ID
		err = s.InTx(ctx, sameID.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, sameID) })
		wantErr(t, "CreateWorkspace(taken id)", err, store.ErrConflict)
		_, err = s.GetWorkspaceBySlug(ctx, "fresh")
		wantErr(t, "workspace of a failed create", err, store.ErrNotFound)
	})

	t.Run("Update", func(t *testing.T) {
		u := *a
		u.Name, u.Slug, u.MaxKeys, u.TestKeyTTLSeconds = "Acme Corp", "acme-corp", 50, 60
		u.LiveModeEnabled = false
		u.UpdatedAt = elsewhere(at(time.Hour))
		inTx(t, s, a.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, &u) })
		want := u
		want.UpdatedAt = at(time.Hour)
		got, err := s.GetWorkspace(ctx, a.ID)
		noErr(t, "GetWorkspace after update", err)
		equal(t, "updated workspace", got, &want)
		_, err = s.GetWorkspaceBySlug(ctx, "acme")
		wantErr(t, "old slug after update", err, store.ErrNotFound)

		// Keeping its own slug is no conflict.
		want.Name = "Acme Again"
		inTx(t, s, a.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, &want) })
		got, err = s.GetWorkspace(ctx, a.ID)
		noErr(t, "GetWorkspace after second update", err)
		equal(t, "workspace updated with its own slug", got, &want)

		taken := want
		taken.Slug = b.Slug
		err = s.InTx(ctx, a.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, &taken) })
		wantErr(t, "UpdateWorkspace(taken slug)", err, store.ErrConflict)
		got, err = s.GetWorkspace(ctx, a.ID)
		noErr(t, "GetWorkspace after conflict", err)
		equal(t, "workspace after a conflicting update", got, &want)

		unknown := newWorkspace("ghost", at(0))
		err = s.InTx(ctx, unknown.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, unknown) })
		wantErr(t, "UpdateWorkspace(unknown)", err, store.ErrNotFound)
	})
}

func testListWorkspaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, next, err := s.ListWorkspaces(ctx, 10, "")
	noErr(t, "ListWorkspaces(empty)", err)
	if len(got) != 0 || next != "" {
		t.Errorf("ListWorkspaces on an empty store = %d items, next %q", len(got), next)
	}

	var all []*keyplane.Workspace
	for i := range 7 {
		all = append(all, createWorkspace(t, s, fmt.Sprintf("ws-%d", i), at(time.Duration(i)*time.Second)))
	}
	slices.Reverse(all) // newest first
	want := make([]string, len(all))
	for i, w := range all {
		want[i] = w.ID
	}

	got, next, err = s.ListWorkspaces(ctx, 100, "")
	noErr(t, "ListWorkspaces", err)
	if next != "" {
		t.Errorf("ListWorkspaces(100) next = %q, want none", next)
	}
	for i := range got {
		equal(t, "listed workspace", &got[i], all[i])
	}

	for limit := 1; limit <= 8; limit++ {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			walked := walk(t, limit, func(cursor string) ([]string, string, error) {
				ws, next, err := s.ListWorkspaces(ctx, limit, cursor)
				return ids(ws, func(w *keyplane.Workspace) string { return w.ID }), next, err
			})
			equal(t, "workspaces over all pages", walked, want)
		})
	}

	t.Run("BadCursor", func(t *testing.T) {
		insertKeys(t, s, newKey(all[0], at(0)), newKey(all[0], at(time.Millisecond)))
		_, keyCursor, err := s.ListAPIKeys(ctx, all[0].ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 1}})
		noErr(t, "ListAPIKeys", err)
		if keyCursor == "" {
			t.Fatal("ListAPIKeys of two keys with limit 1 gave no next cursor")
		}
		for _, c := range badCursors(keyCursor) {
			_, _, err := s.ListWorkspaces(ctx, 2, c)
			wantErr(t, fmt.Sprintf("ListWorkspaces(cursor %q)", c), err, store.ErrBadCursor)
		}
	})
}

// walk pages through a list with list and returns the ids of every page in order. It fails the test
// when a page is longer than limit, a page but the last is short, a next cursor leads to an empty
// page, or an id repeats.
func walk(t *testing.T, limit int, list func(cursor string) ([]string, string, error)) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("more than 1000 pages: the cursor does not advance")
		}
		page, next, err := list(cursor)
		noErr(t, "list page", err)
		if len(page) > limit {
			t.Fatalf("page of %d items for limit %d", len(page), limit)
		}
		if next != "" && len(page) != limit {
			t.Fatalf("short page (%d of %d) with a next cursor", len(page), limit)
		}
		if cursor != "" && len(page) == 0 {
			t.Fatalf("a next cursor led to an empty page: there should have been none")
		}
		for _, id := range page {
			if seen[id] {
				t.Fatalf("%s listed twice", id)
			}
			seen[id] = true
		}
		out = append(out, page...)
		if next == "" {
			if out == nil {
				out = []string{}
			}
			return out
		}
		cursor = next
	}
}

// badCursors are cursors no list of keyplane made for the list under test; foreign is a valid cursor
// of another list.
func badCursors(foreign string) []string {
	out := []string{
		"not a cursor!",
		"%%%",
		base64.RawURLEncoding.EncodeToString([]byte("x")),
		base64.RawURLEncoding.EncodeToString([]byte("' OR 1=1 --")),
		base64.RawURLEncoding.EncodeToString(make([]byte, 300)),
	}
	if foreign != "" {
		out = append(out, foreign)
	}
	return out
}
