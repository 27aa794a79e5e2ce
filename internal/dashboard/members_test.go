package dashboard_test

// The membership forms: invitations (accept, decline), removal and leaving, with their role checks,
// their form tokens and the last owner rule. Run by TestDashboardHTTP (dashboard_test.go), on a
// workspace of their own ("team") so that no other test's people change.

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var reInvitation = regexp.MustCompile(`data-invitation="([^"]+)"`)

// memberRow is the members page's row of a person, "" when they are not listed.
func memberRow(body, userID string) string {
	i := strings.Index(body, `data-member="`+userID+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</tr>")
	return body[i : i+j]
}

func testMemberFlows(t *testing.T, s *kpServer) {
	team := s.createWorkspace(t, "team")
	s.createWorkspace(t, "elsewhere")
	ownerID := s.cli(t, thePassword+"\n", "users", "create", "--email", "teamowner@example.com", "--role", "owner", "--workspace", "team")
	adminID := s.cli(t, thePassword+"\n", "users", "create", "--email", "teamadmin@example.com", "--role", "admin", "--workspace", "team")
	// Another tenant's owner: the person an owner of team might try to attach.
	guestID := s.cli(t, thePassword+"\n", "users", "create", "--email", "guest@example.com", "--role", "owner", "--workspace", "elsewhere")
	outsiderID := s.cli(t, thePassword+"\n", "users", "create", "--email", "outsider@example.com", "--role", "viewer", "--workspace", "elsewhere")
	signIn := func(email string) *kpPerson {
		t.Helper()
		p := s.newPerson(email)
		expectRedirect(t, p.login(t, email, thePassword, "/status"), "/status")
		p.loadCSRF(t)
		return p
	}
	owner, admin, guest := signIn("teamowner@example.com"), signIn("teamadmin@example.com"), signIn("guest@example.com")

	t.Run("InvitationIsNoMembership", func(t *testing.T) {
		e := owner.post(t, "/w/team/members", url.Values{"email": {"Guest@Example.com"}, "role": {"developer"}})
		expectRedirect(t, e, "/w/team/members")
		page := owner.get(t, "/w/team/members")
		if got := first(reFlash, page.body); !strings.Contains(got, "guest@example.com is invited as developer") {
			t.Errorf("flash %q", got)
		}
		if row := memberRow(page.body, guestID); !strings.Contains(row, ">invited<") || !strings.Contains(row, ">developer<") || !strings.Contains(row, ">Revoke<") {
			t.Errorf("the invitation's row: %q", row)
		}
		// The guest has no access to team, and no link to it; their own workspace is untouched.
		for _, path := range []string{"/w/team/logs", "/w/team/members", "/w/team/audit", "/w/team"} {
			errorPage(t, guest.get(t, path), http.StatusNotFound, "There is no workspace here")
		}
		st := guest.get(t, "/status")
		if sw := switcher(st.body); !slices.Equal(sw, []string{"elsewhere"}) {
			t.Errorf("the guest's switcher: %v, want only elsewhere", sw)
		}
		if !strings.Contains(st.body, `id="invitation-count">1<`) {
			t.Errorf("the navigation does not say that an invitation waits")
		}
		// Signing in lands on the invitations, never in the inviting workspace.
		fresh := s.newPerson("guest@example.com")
		expectRedirect(t, fresh.login(t, "guest@example.com", thePassword, ""), "/")
		expectRedirect(t, fresh.get(t, "/"), "/invitations")
		inv := guest.get(t, "/invitations")
		expect(t, inv, http.StatusOK)
		expectText(t, inv, "Invitations", "Workspace team", "developer", "Accept", "Decline")
		if ids := reInvitation.FindAllStringSubmatch(inv.body, -1); len(ids) != 1 || ids[0][1] != team {
			t.Errorf("invitations listed: %v", ids)
		}
		if !strings.Contains(inv.body, `name="csrf" value="`+guest.csrf+`"`) {
			t.Errorf("the answer forms lack the session's token")
		}
	})

	t.Run("AnswersNeedTheToken", func(t *testing.T) {
		for _, path := range []string{"/invitations/accept", "/invitations/decline"} {
			for _, c := range []struct {
				name string
				form url.Values
				hdr  []string
				msg  string
			}{
				{"none", url.Values{"workspace": {team}, "csrf": {""}}, nil, "This form has expired"},
				{"another person's", url.Values{"workspace": {team}, "csrf": {owner.csrf}}, nil, "This form has expired"},
				{"cross-site", url.Values{"workspace": {team}}, []string{"Sec-Fetch-Site", "cross-site"}, "sent from another site"},
			} {
				e := guest.post(t, path, c.form, c.hdr...)
				if e.status != http.StatusForbidden || !strings.Contains(first(reErrorMsg, e.body), c.msg) {
					t.Errorf("%s with %s token: %d %q", path, c.name, e.status, e.summary())
				}
			}
		}
		if len(reInvitation.FindAllString(guest.get(t, "/invitations").body, -1)) != 1 {
			t.Fatal("a refused answer changed the invitation")
		}
	})

	t.Run("OnlyTheInvitedAnswer", func(t *testing.T) {
		// The owner and the admin of team are no invited people; elsewhere and junk invited nobody.
		for _, p := range []*kpPerson{owner, admin} {
			errorPage(t, p.post(t, "/invitations/accept", url.Values{"workspace": {team}}), http.StatusNotFound, "There is no such invitation")
		}
		for _, ws := range []string{s.ws["elsewhere"], s.ws["default"], "", "ws_nothing", "../team"} {
			errorPage(t, guest.post(t, "/invitations/accept", url.Values{"workspace": {ws}}), http.StatusNotFound, "There is no such invitation")
			errorPage(t, guest.post(t, "/invitations/decline", url.Values{"workspace": {ws}}), http.StatusNotFound, "There is no such invitation")
		}
	})

	t.Run("Decline", func(t *testing.T) {
		e := guest.post(t, "/invitations/decline", url.Values{"workspace": {team}})
		expectRedirect(t, e, "/invitations")
		page := guest.get(t, "/invitations")
		if got := first(reFlash, page.body); !strings.Contains(got, "declined the invitation to Workspace team") {
			t.Errorf("flash %q", got)
		}
		expectText(t, page, "No invitations waiting.")
		if memberRow(owner.get(t, "/w/team/members").body, guestID) != "" {
			t.Error("a declined invitation is still listed")
		}
		// The entry carries no IP or user agent of the person (TestMembershipNeedsConsent).
		expectText(t, owner.get(t, "/w/team/audit?action=member.invitation_declined"), "member.invitation_declined")
		// With nothing pending, home is the person's own workspace.
		expectRedirect(t, guest.get(t, "/"), "/w/elsewhere/settings/api")
	})

	t.Run("Accept", func(t *testing.T) {
		expectRedirect(t, owner.post(t, "/w/team/members", url.Values{"email": {"guest@example.com"}, "role": {"developer"}}), "/w/team/members")
		e := guest.post(t, "/invitations/accept", url.Values{"workspace": {team}})
		expectRedirect(t, e, "/w/team/logs") // a developer's first page
		logs := guest.get(t, "/w/team/logs")
		expect(t, logs, http.StatusOK)
		if sw := switcher(logs.body); !slices.Contains(sw, "team") {
			t.Errorf("the guest's switcher after accepting: %v", sw)
		}
		if row := memberRow(owner.get(t, "/w/team/members").body, guestID); !strings.Contains(row, ">active<") {
			t.Errorf("the guest's row after accepting: %q", row)
		}
		expectText(t, owner.get(t, "/w/team/audit?action=member.joined"), "member.joined")
		errorPage(t, guest.post(t, "/invitations/accept", url.Values{"workspace": {team}}), http.StatusNotFound, "There is no such invitation")
	})

	t.Run("RoleChecks", func(t *testing.T) {
		// A developer sees no Remove button, and is refused anyway.
		page := guest.get(t, "/w/team/members")
		expect(t, page, http.StatusOK)
		if strings.Contains(page.body, "/remove") {
			t.Error("a developer is offered Remove")
		}
		if !strings.Contains(page.body, `id="leave"`) {
			t.Error("a member is not offered Leave")
		}
		errorPage(t, guest.get(t, "/w/team/members/"+adminID+"/remove"), http.StatusForbidden, "does not allow this")
		errorPage(t, guest.post(t, "/w/team/members/"+adminID+"/remove", nil), http.StatusForbidden, "does not allow this")
		// An admin may not remove an owner; the owner's row is still there.
		errorPage(t, admin.post(t, "/w/team/members/"+ownerID+"/remove", nil), http.StatusForbidden, "an owner may remove an owner")
		if memberRow(owner.get(t, "/w/team/members").body, ownerID) == "" {
			t.Fatal("the admin removed the owner")
		}
		// Nobody of team reaches another workspace's member through team.
		errorPage(t, owner.get(t, "/w/team/members/"+outsiderID+"/remove"), http.StatusNotFound, "")
		errorPage(t, owner.post(t, "/w/team/members/"+outsiderID+"/remove", nil), http.StatusNotFound, "")
	})

	t.Run("LastOwner", func(t *testing.T) {
		e := owner.post(t, "/w/team/leave", nil)
		expect(t, e, http.StatusConflict)
		expectText(t, e, "without an owner")
		e = owner.post(t, "/w/team/members/"+ownerID+"/remove", nil)
		expect(t, e, http.StatusConflict)
		expectText(t, e, "without an owner")
		e = owner.post(t, "/w/team/members", url.Values{"email": {"teamowner@example.com"}, "role": {"admin"}})
		errorPage(t, e, http.StatusConflict, "without an owner")
		expect(t, owner.get(t, "/w/team/settings/api"), http.StatusOK)
	})

	t.Run("Remove", func(t *testing.T) {
		confirm := owner.get(t, "/w/team/members/"+guestID+"/remove")
		expect(t, confirm, http.StatusOK)
		expectText(t, confirm, "guest@example.com", "loses access to this workspace at once")
		if !strings.Contains(confirm.body, `action="/w/team/members/`+guestID+`/remove"`) {
			t.Error("the confirmation has no form")
		}
		// The members page's Remove is a link to that page, which the script turns into a dialog.
		if row := memberRow(owner.get(t, "/w/team/members").body, guestID); !strings.Contains(row, `data-confirm="Remove guest@example.com`) {
			t.Errorf("the Remove button: %q", row)
		}
		expectRedirect(t, owner.post(t, "/w/team/members/"+guestID+"/remove", nil), "/w/team/members")
		if got := first(reFlash, owner.get(t, "/w/team/members").body); !strings.Contains(got, "no longer a member") {
			t.Errorf("flash %q", got)
		}
		// At once: the guest's next request, in the session they already have.
		errorPage(t, guest.get(t, "/w/team/logs"), http.StatusNotFound, "There is no workspace here")
		errorPage(t, owner.post(t, "/w/team/members/"+guestID+"/remove", nil), http.StatusNotFound, "")
		expectText(t, owner.get(t, "/w/team/audit?action=member.removed"), "member.removed")
	})

	t.Run("Leave", func(t *testing.T) {
		confirm := admin.get(t, "/w/team/leave")
		expect(t, confirm, http.StatusOK)
		expectText(t, confirm, "You lose access to Workspace team at once")
		expectRedirect(t, admin.post(t, "/w/team/leave", nil), "/")
		errorPage(t, admin.get(t, "/w/team/members"), http.StatusNotFound, "There is no workspace here")
		expectText(t, owner.get(t, "/w/team/audit?action=member.left"), "member.left")
		if memberRow(owner.get(t, "/w/team/members").body, adminID) != "" {
			t.Error("the admin who left is still listed")
		}
	})
}
