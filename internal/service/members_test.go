package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

const memberPassword = "a long enough password"

// memberWorld is a service with workspaces made by the operator and people made through the CLI's
// call (active members at once).
type memberWorld struct {
	t   *testing.T
	svc *service.Service
	st  store.Store
	ctx context.Context
	sys *keyplane.Caller
}

func newMemberWorld(t *testing.T, driver string) *memberWorld {
	svc, st := newService(t, driver)
	return &memberWorld{t: t, svc: svc, st: st, ctx: context.Background(), sys: keyplane.System("test")}
}

func (w *memberWorld) workspace(slug string) *keyplane.Workspace {
	w.t.Helper()
	ws, err := w.svc.CreateWorkspace(w.ctx, w.sys, service.WorkspaceInput{Name: "Workspace " + slug, Slug: slug})
	if err != nil {
		w.t.Fatal(err)
	}
	return ws
}

// person makes an account that is an active member of ws with role (ws nil: an operator admin).
func (w *memberWorld) person(email string, ws *keyplane.Workspace, role keyplane.Role) *keyplane.User {
	w.t.Helper()
	in := service.UserInput{Email: email, Password: memberPassword, Operator: ws == nil, Role: role}
	if ws != nil {
		in.WorkspaceID = ws.ID
	}
	u, err := w.svc.CreateUser(w.ctx, w.sys, in)
	if err != nil {
		w.t.Fatalf("create %s: %v", email, err)
	}
	return u
}

// as is the person acting in ws as the dashboard makes them: their role there from the store, now.
func (w *memberWorld) as(u *keyplane.User, ws *keyplane.Workspace) *keyplane.Caller {
	w.t.Helper()
	c, ok := w.caller(u, ws)
	if !ok {
		w.t.Fatalf("%s may not open %s", u.Email, ws.Slug)
	}
	return c
}

func (w *memberWorld) caller(u *keyplane.User, ws *keyplane.Workspace) (*keyplane.Caller, bool) {
	w.t.Helper()
	fresh, err := w.st.GetUser(w.ctx, u.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	ms, err := w.svc.Memberships(w.ctx, fresh)
	if err != nil {
		w.t.Fatal(err)
	}
	sess := &keyplane.Session{UserID: u.ID, ReauthAt: time.Unix(0, 0)}
	c, ok := service.PersonCaller(fresh, sess, ms, ws.ID, time.Now())
	if ok {
		c.IP, c.UserAgent = "192.0.2.7", "member-test"
	}
	return c, ok
}

// outside is the person acting outside any workspace: answering an invitation.
func outside(u *keyplane.User) *keyplane.Caller {
	return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: u.ID, Name: u.Email}, IP: "198.51.100.23", UserAgent: "victim-browser/1.0"}
}

func (w *memberWorld) members(ws *keyplane.Workspace) map[string]keyplane.Member {
	w.t.Helper()
	ms, err := w.st.ListMembers(w.ctx, ws.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]keyplane.Member{}
	for _, m := range ms {
		out[m.Email] = m
	}
	return out
}

func (w *memberWorld) activeOwners(ws *keyplane.Workspace) int {
	n := 0
	for _, m := range w.members(ws) {
		if m.Role == keyplane.RoleOwner && m.Status == keyplane.MemberActive {
			n++
		}
	}
	return n
}

// audit returns the entries of a chain, oldest first, as their JSON bodies.
func (w *memberWorld) audit(chain string) []map[string]any {
	w.t.Helper()
	var out []map[string]any
	err := w.st.ScanAudit(w.ctx, chain, func(e *keyplane.AuditEntry) error {
		var m map[string]any
		if err := json.Unmarshal(e.Body, &m); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *memberWorld) lastAudit(chain, action string) map[string]any {
	w.t.Helper()
	entries := w.audit(chain)
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i]["action"] == action {
			return entries[i]
		}
	}
	w.t.Fatalf("no %s entry in chain %q", action, chain)
	return nil
}

// TestMembershipNeedsConsent: an owner who adds another tenant's owner, or the operator admin, by
// email makes an invitation that gives no access and sends nobody anywhere until its holder accepts it
// from their own session; declining tells the inviter nothing of where the person is.
func TestMembershipNeedsConsent(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			w := newMemberWorld(t, d)
			evil, home := w.workspace("evil"), w.workspace("home")
			attacker := w.person("attacker@example.com", evil, keyplane.RoleOwner)
			victim := w.person("victim@example.com", home, keyplane.RoleOwner)
			op := w.person("ops@example.com", nil, "")

			for _, target := range []*keyplane.User{victim, op} {
				m, created, err := w.svc.AddMember(w.ctx, w.as(attacker, evil), evil.ID, target.Email, keyplane.RoleViewer)
				if err != nil || !created || m.Status != keyplane.MemberInvited || m.UserID != target.ID {
					t.Fatalf("invite %s: %+v created=%v, %v", target.Email, m, created, err)
				}
			}
			// The victim's workspaces are theirs alone: evil is neither listed nor open to them.
			ms, err := w.svc.Memberships(w.ctx, victim)
			if err != nil || len(ms) != 1 || ms[0].Workspace.ID != home.ID {
				t.Fatalf("the victim's workspaces after the invitation: %+v, %v", ms, err)
			}
			if _, ok := w.caller(victim, evil); ok {
				t.Fatal("an invited person may open the workspace")
			}
			inv, err := w.svc.Invitations(w.ctx, victim)
			if err != nil || len(inv) != 1 || inv[0].Workspace.ID != evil.ID || inv[0].Role != keyplane.RoleViewer {
				t.Fatalf("the victim's invitations: %+v, %v", inv, err)
			}
			// Listed as invited in the inviting workspace.
			if m := w.members(evil)["victim@example.com"]; m.Status != keyplane.MemberInvited {
				t.Fatalf("the invitation in evil's members: %+v", m)
			}
			invited := map[any]bool{}
			for _, e := range w.audit(evil.ID) {
				if e["action"] == "member.invited" {
					invited[e["target"].(map[string]any)["id"]] = true
				}
			}
			if !invited[victim.ID] || !invited[op.ID] {
				t.Errorf("member.invited entries for %v, want the victim and the operator", invited)
			}

			// Declining: gone, recorded without the person's address or browser.
			if err := w.svc.DeclineInvitation(w.ctx, outside(victim), evil.ID); err != nil {
				t.Fatalf("decline: %v", err)
			}
			if _, ok := w.members(evil)["victim@example.com"]; ok {
				t.Fatal("a declined invitation is still listed")
			}
			e := w.lastAudit(evil.ID, "member.invitation_declined")
			if e["ip"] != "" || e["userAgent"] != "" || e["actor"].(map[string]any)["id"] != victim.ID {
				t.Errorf("the decline tells the inviter where the person is: %v", e)
			}
			if err := w.svc.DeclineInvitation(w.ctx, outside(victim), evil.ID); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
				t.Fatalf("declining again: %v", err)
			}
			if _, err := w.svc.AcceptInvitation(w.ctx, outside(victim), evil.ID); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
				t.Fatalf("accepting a declined invitation: %v", err)
			}

			// Accepting: a member with the role offered, from then on.
			if _, _, err := w.svc.AddMember(w.ctx, w.as(attacker, evil), evil.ID, victim.Email, keyplane.RoleDeveloper); err != nil {
				t.Fatal(err)
			}
			// Somebody else cannot answer it, nor can anyone answer an invitation to another workspace.
			if _, err := w.svc.AcceptInvitation(w.ctx, outside(attacker), evil.ID); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
				t.Fatalf("the inviter accepts on the victim's behalf: %v", err)
			}
			for _, bad := range []string{home.ID, "ws_nothing", "", "../evil"} {
				if _, err := w.svc.AcceptInvitation(w.ctx, outside(victim), bad); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
					t.Fatalf("accept %q: %v", bad, err)
				}
			}
			if _, err := w.svc.AcceptInvitation(w.ctx, w.sys, evil.ID); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
				t.Fatalf("a non-person accepts: %v", err)
			}
			got, err := w.svc.AcceptInvitation(w.ctx, outside(victim), evil.ID)
			if err != nil || got.ID != evil.ID {
				t.Fatalf("accept: %+v, %v", got, err)
			}
			if c := w.as(victim, evil); c.Role != keyplane.RoleDeveloper {
				t.Fatalf("role after accepting: %q", c.Role)
			}
			if inv, _ := w.svc.Invitations(w.ctx, victim); len(inv) != 0 {
				t.Fatalf("invitations after accepting: %+v", inv)
			}
			if e := w.lastAudit(evil.ID, "member.joined"); e["actor"].(map[string]any)["id"] != victim.ID {
				t.Errorf("member.joined entry: %v", e)
			}

			// The operator admin's invitation: opening every workspace as an operator is not
			// membership, and the invitation stays one until answered.
			if inv, _ := w.svc.Invitations(w.ctx, op); len(inv) != 1 || inv[0].Workspace.ID != evil.ID {
				t.Fatalf("the operator's invitations: %+v", inv)
			}
			if m := w.members(evil)["ops@example.com"]; m.Status != keyplane.MemberInvited {
				t.Fatalf("the operator in evil's members: %+v", m)
			}
		})
	}
}

// TestOwnerRules: only an owner (or the operator) may change an owner's role or remove one, and no
// change, removal or departure leaves a workspace without an active owner.
func TestOwnerRules(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			w := newMemberWorld(t, d)
			ws, other := w.workspace("shop"), w.workspace("other")
			owner := w.person("owner@example.com", ws, keyplane.RoleOwner)
			admin := w.person("admin@example.com", ws, keyplane.RoleAdmin)
			dev := w.person("dev@example.com", ws, keyplane.RoleDeveloper)
			stranger := w.person("stranger@example.com", other, keyplane.RoleOwner)

			code := func(what string, err error, want keyplane.Code) {
				t.Helper()
				if keyplane.ErrorCode(err) != want {
					t.Errorf("%s: %v, want %s", what, err, want)
				}
			}
			_, _, err := w.svc.AddMember(w.ctx, w.as(admin, ws), ws.ID, owner.Email, keyplane.RoleViewer)
			code("an admin demotes the owner", err, keyplane.CodeForbidden)
			_, err = w.svc.RemoveMember(w.ctx, w.as(admin, ws), ws.ID, owner.ID)
			code("an admin removes the owner", err, keyplane.CodeForbidden)
			_, _, err = w.svc.AddMember(w.ctx, w.as(admin, ws), ws.ID, "new@example.com", keyplane.RoleOwner)
			code("an admin invites an owner", err, keyplane.CodeInvalidRequest)
			_, _, err = w.svc.AddMember(w.ctx, w.as(dev, ws), ws.ID, "new@example.com", keyplane.RoleViewer)
			code("a developer invites", err, keyplane.CodeForbidden)
			_, err = w.svc.RemoveMember(w.ctx, w.as(dev, ws), ws.ID, admin.ID)
			code("a developer removes", err, keyplane.CodeForbidden)

			// The last owner, by every way out, the operator's included.
			_, _, err = w.svc.AddMember(w.ctx, w.as(owner, ws), ws.ID, owner.Email, keyplane.RoleAdmin)
			code("the last owner demotes themselves", err, keyplane.CodeLastOwner)
			_, err = w.svc.RemoveMember(w.ctx, w.as(owner, ws), ws.ID, owner.ID)
			code("the last owner removes themselves", err, keyplane.CodeLastOwner)
			code("the last owner leaves", w.svc.LeaveWorkspace(w.ctx, w.as(owner, ws), ws.ID), keyplane.CodeLastOwner)
			_, _, err = w.svc.AddMember(w.ctx, w.sys, ws.ID, owner.Email, keyplane.RoleViewer)
			code("the operator demotes the last owner", err, keyplane.CodeLastOwner)
			_, err = w.svc.RemoveMember(w.ctx, w.sys, ws.ID, owner.ID)
			code("the operator removes the last owner", err, keyplane.CodeLastOwner)
			_, err = w.svc.CreateUser(w.ctx, w.sys, service.UserInput{Email: owner.Email, Password: memberPassword, WorkspaceID: ws.ID, Role: keyplane.RoleViewer})
			code("users create demotes the last owner", err, keyplane.CodeLastOwner)
			// An invited owner is no owner yet.
			if _, _, err := w.svc.AddMember(w.ctx, w.as(owner, ws), ws.ID, "heir@example.com", keyplane.RoleOwner); err != nil {
				t.Fatal(err)
			}
			code("the last active owner leaves, an owner invited", w.svc.LeaveWorkspace(w.ctx, w.as(owner, ws), ws.ID), keyplane.CodeLastOwner)
			if n := w.activeOwners(ws); n != 1 {
				t.Fatalf("%d active owners after the refusals", n)
			}

			// With a second owner, an owner may step down, and the other may remove them.
			if m, created, err := w.svc.AddMember(w.ctx, w.as(owner, ws), ws.ID, admin.Email, keyplane.RoleOwner); err != nil || created || m.Role != keyplane.RoleOwner {
				t.Fatalf("promote the admin: %+v %v %v", m, created, err)
			}
			if _, _, err := w.svc.AddMember(w.ctx, w.as(owner, ws), ws.ID, owner.Email, keyplane.RoleAdmin); err != nil {
				t.Fatalf("an owner steps down beside another: %v", err)
			}
			_, err = w.svc.RemoveMember(w.ctx, w.as(owner, ws), ws.ID, admin.ID)
			code("the admin that was the owner removes the last owner", err, keyplane.CodeForbidden)
			if _, err := w.svc.RemoveMember(w.ctx, w.as(admin, ws), ws.ID, owner.ID); err != nil {
				t.Fatalf("an owner removes an admin: %v", err)
			}
			if _, ok := w.caller(owner, ws); ok {
				t.Fatal("a removed member still opens the workspace")
			}
			if e := w.lastAudit(ws.ID, "member.removed"); e["target"].(map[string]any)["id"] != owner.ID {
				t.Errorf("member.removed entry: %v", e)
			}

			// A member leaves; an invitation is revoked.
			if err := w.svc.LeaveWorkspace(w.ctx, w.as(dev, ws), ws.ID); err != nil {
				t.Fatalf("a developer leaves: %v", err)
			}
			if _, ok := w.caller(dev, ws); ok {
				t.Fatal("a member who left still opens the workspace")
			}
			w.lastAudit(ws.ID, "member.left")
			heir := w.members(ws)["heir@example.com"]
			if m, err := w.svc.RemoveMember(w.ctx, w.as(admin, ws), ws.ID, heir.UserID); err != nil || m.Status != keyplane.MemberInvited {
				t.Fatalf("revoke the invitation: %+v, %v", m, err)
			}
			w.lastAudit(ws.ID, "member.invitation_revoked")
			if _, err := w.svc.AcceptInvitation(w.ctx, outside(&keyplane.User{ID: heir.UserID, Email: heir.Email}), ws.ID); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
				t.Fatalf("accepting a revoked invitation: %v", err)
			}

			// Not found: people who are not members here, malformed ids, another workspace's callers.
			for _, uid := range []string{stranger.ID, dev.ID, "usr_nobody", "", "usr_01ARZ3NDEKTSV4RRFFQ69G5FAV"} {
				_, err := w.svc.RemoveMember(w.ctx, w.as(admin, ws), ws.ID, uid)
				code("remove "+uid, err, keyplane.CodeNotFound)
			}
			_, err = w.svc.RemoveMember(w.ctx, w.as(stranger, other), ws.ID, admin.ID)
			code("an owner of another workspace removes", err, keyplane.CodeNotFound)
			_, _, err = w.svc.AddMember(w.ctx, w.as(stranger, other), ws.ID, "x@example.com", keyplane.RoleViewer)
			code("an owner of another workspace invites", err, keyplane.CodeNotFound)
			key := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "key_x"}, WorkspaceID: ws.ID, Permissions: keyplane.RolePermissions(keyplane.RoleOwner)}
			_, err = w.svc.RemoveMember(w.ctx, key, ws.ID, admin.ID)
			code("a workspace key removes", err, keyplane.CodeForbidden)
			code("a workspace key leaves", w.svc.LeaveWorkspace(w.ctx, key, ws.ID), keyplane.CodeForbidden)
			if n := w.activeOwners(ws); n != 1 {
				t.Fatalf("%d active owners at the end", n)
			}
		})
	}
}

// TestOwnersDemoteEachOtherAtOnce: two owners demoting (or removing, or leaving) each other at the
// same moment leave one owner, never none: each change reads the members in the transaction that
// holds the workspace's chain lock.
func TestOwnersDemoteEachOtherAtOnce(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			w := newMemberWorld(t, d)
			ws := w.workspace("duel")
			a := w.person("a@example.com", ws, keyplane.RoleOwner)
			b := w.person("b@example.com", ws, keyplane.RoleOwner)
			ways := []struct {
				name string
				fn   func(me *keyplane.Caller, them *keyplane.User) error
			}{
				{"Demote", func(me *keyplane.Caller, them *keyplane.User) error {
					_, _, err := w.svc.AddMember(w.ctx, me, ws.ID, them.Email, keyplane.RoleAdmin)
					return err
				}},
				{"Remove", func(me *keyplane.Caller, them *keyplane.User) error {
					_, err := w.svc.RemoveMember(w.ctx, me, ws.ID, them.ID)
					return err
				}},
				{"Leave", func(me *keyplane.Caller, _ *keyplane.User) error { return w.svc.LeaveWorkspace(w.ctx, me, ws.ID) }},
			}
			for round := 0; round < 6; round++ {
				way := ways[round%len(ways)]
				// Both owners again, active.
				for _, u := range []*keyplane.User{a, b} {
					if _, err := w.svc.CreateUser(w.ctx, w.sys, service.UserInput{Email: u.Email, Password: memberPassword, WorkspaceID: ws.ID, Role: keyplane.RoleOwner}); err != nil {
						t.Fatal(err)
					}
				}
				// Each side takes its caller first (both owners), then both go at once.
				sides := []struct {
					me   *keyplane.Caller
					them *keyplane.User
				}{{w.as(a, ws), b}, {w.as(b, ws), a}}
				var wg sync.WaitGroup
				errs := make([]error, 2)
				start := make(chan struct{})
				for i, side := range sides {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[i] = way.fn(side.me, side.them)
					}()
				}
				close(start)
				wg.Wait()
				if n := w.activeOwners(ws); n != 1 {
					t.Fatalf("%s round %d: %d active owners (errors %v)", way.name, round, n, errs)
				}
				refused := 0
				for _, err := range errs {
					switch keyplane.ErrorCode(err) {
					case keyplane.CodeLastOwner, keyplane.CodeForbidden, keyplane.CodeNotFound:
						// last_owner; or the other went first and this one is no longer an owner
						// (forbidden) or no longer a member (not found) by the time it acts.
						refused++
					default:
						if err != nil {
							t.Fatalf("%s round %d: %v", way.name, round, err)
						}
					}
				}
				if refused != 1 {
					t.Fatalf("%s round %d: %d refused, want 1: %v", way.name, round, refused, errs)
				}
			}
		})
	}
}

// TestOperatorFlagCleared: the operator flag can be taken away, which ends the person's operator
// powers at once, and is recorded in the operator's chain.
func TestOperatorFlagCleared(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			w := newMemberWorld(t, d)
			ws := w.workspace("any")
			op := w.person("ops@example.com", nil, "")
			if c := w.as(op, ws); !c.Operator {
				t.Fatal("the operator admin is not an operator")
			}
			// users create without --operator never took the flag away; it still does not.
			if _, err := w.svc.CreateUser(w.ctx, w.sys, service.UserInput{Email: op.Email, Password: memberPassword}); err != nil {
				t.Fatal(err)
			}
			if c := w.as(op, ws); !c.Operator {
				t.Fatal("users create took the operator flag away")
			}
			if _, err := w.svc.CreateUser(w.ctx, w.sys, service.UserInput{Email: op.Email, Password: memberPassword, Operator: true, WorkspaceID: ws.ID, Role: keyplane.RoleOwner}); keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
				t.Fatalf("operator and member at once: %v", err)
			}

			u, err := w.svc.SetOperator(w.ctx, w.sys, "OPS@example.com", false)
			if err != nil || u.Operator {
				t.Fatalf("clear the flag: %+v, %v", u, err)
			}
			if _, ok := w.caller(op, ws); ok {
				t.Fatal("a former operator still opens a workspace they are no member of")
			}
			if ms, _ := w.svc.Memberships(w.ctx, u); len(ms) != 0 {
				t.Fatalf("a former operator's workspaces: %+v", ms)
			}
			e := w.lastAudit(store.OperatorChain, "user.updated")
			ch := e["changes"].(map[string]any)["operator"].(map[string]any)
			if ch["from"] != true || ch["to"] != false {
				t.Errorf("user.updated entry: %v", e)
			}
			before := len(w.audit(store.OperatorChain))
			if _, err := w.svc.SetOperator(w.ctx, w.sys, op.Email, false); err != nil {
				t.Fatal(err)
			}
			if after := len(w.audit(store.OperatorChain)); after != before {
				t.Errorf("an unchanged flag wrote %d entries", after-before)
			}
			if u, err := w.svc.SetOperator(w.ctx, w.sys, op.Email, true); err != nil || !u.Operator {
				t.Fatalf("give the flag back: %+v, %v", u, err)
			}
			if _, err := w.svc.SetOperator(w.ctx, w.sys, "nobody@example.com", false); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
				t.Fatalf("unknown email: %v", err)
			}
			if _, err := w.svc.SetOperator(w.ctx, w.sys, "not an email", false); keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
				t.Fatalf("bad email: %v", err)
			}
			member := w.person("member@example.com", ws, keyplane.RoleOwner)
			if _, err := w.svc.SetOperator(w.ctx, w.as(member, ws), member.Email, true); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
				t.Fatalf("an owner makes themselves an operator: %v", err)
			}
		})
	}
}

// TestRoleChangeOfInvitation: changing the role of an invited person changes the invitation, which
// stays an invitation.
func TestRoleChangeOfInvitation(t *testing.T) {
	w := newMemberWorld(t, "sqlite")
	ws := w.workspace("shop")
	owner := w.person("owner@example.com", ws, keyplane.RoleOwner)
	for i, role := range []keyplane.Role{keyplane.RoleViewer, keyplane.RoleAdmin, keyplane.RoleAdmin} {
		m, created, err := w.svc.AddMember(w.ctx, w.as(owner, ws), ws.ID, "Ana@Example.com", role)
		if err != nil || created != (i == 0) || m.Status != keyplane.MemberInvited || m.Role != role || m.Email != "ana@example.com" {
			t.Fatalf("%d: %+v created=%v, %v", i, m, created, err)
		}
	}
	n := 0
	for _, e := range w.audit(ws.ID) {
		if a := fmt.Sprint(e["action"]); a == "member.invited" || a == "member.updated" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d member entries for an invitation and one change, want 2", n)
	}
}

// TestStaleRoleActsAsNow: a person's role is read when their request arrives, before the change's
// transaction; one demoted or removed in between acts with what they hold when the change is made.
// Owners A, B and C: B's caller is made while B is an owner, then A demotes B to viewer; B's
// request, still carrying the owner's role, may neither remove C nor invite anyone. Removed, B is
// not found.
func TestStaleRoleActsAsNow(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			w := newMemberWorld(t, d)
			ws := w.workspace("shop")
			a := w.person("a@example.com", ws, keyplane.RoleOwner)
			b := w.person("b@example.com", ws, keyplane.RoleOwner)
			c := w.person("c@example.com", ws, keyplane.RoleOwner)
			stale := w.as(b, ws)
			if _, _, err := w.svc.AddMember(w.ctx, w.as(a, ws), ws.ID, b.Email, keyplane.RoleViewer); err != nil {
				t.Fatal(err)
			}
			if _, err := w.svc.RemoveMember(w.ctx, stale, ws.ID, c.ID); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
				t.Errorf("a demoted owner's request removed an owner: %v", err)
			}
			if _, _, err := w.svc.AddMember(w.ctx, stale, ws.ID, "new@example.com", keyplane.RoleOwner); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
				t.Errorf("a demoted owner's request invited an owner: %v", err)
			}
			if _, err := w.svc.RemoveMember(w.ctx, w.as(a, ws), ws.ID, b.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := w.svc.RemoveMember(w.ctx, stale, ws.ID, c.ID); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
				t.Errorf("a removed owner's request: %v, want not found", err)
			}
			if n := w.activeOwners(ws); n != 2 {
				t.Errorf("active owners: %d, want 2 (a and c)", n)
			}
		})
	}
}
