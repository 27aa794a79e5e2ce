package dashboard

import (
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
)

// The forbidden pages name the person's role only when that role lacks the permission: a role that
// holds it was refused for another reason, which the service's message gives. The HTTP tests cannot
// reach every case (the dashboard asks an admin for the password before the service could refuse).
func TestRefusalMessages(t *testing.T) {
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ws := &keyplane.Workspace{ID: "ws_1", Slug: "one"}
	person := func(role keyplane.Role) *view {
		return &view{Workspace: ws, Caller: &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_1"},
			WorkspaceID: ws.ID, Role: role, Permissions: keyplane.RolePermissions(role)}}
	}
	operator := &view{Workspace: ws, Caller: &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_op"}, Operator: true}}
	reauth := keyplane.Errorf(keyplane.CodeForbidden, "revealing a signing secret needs your password, entered in the last 5 minutes")
	onlyAdmins := keyplane.Errorf(keyplane.CodeForbidden, "only owners and admins may reveal a signing secret")
	lacks := keyplane.Errorf(keyplane.CodeForbidden, "this credential lacks the %s permission", keyplane.PermWebhooksWrite)
	reMsg := regexp.MustCompile(`(?s)id="error-message">(.*?)</p>`)

	for _, c := range []struct {
		name string
		v    *view
		err  error
		want string
	}{
		{"admin without a recent password", person(keyplane.RoleAdmin), reauth, "Revealing a signing secret needs your password, entered in the last 5 minutes."},
		{"owner without a recent password", person(keyplane.RoleOwner), reauth, "Revealing a signing secret needs your password, entered in the last 5 minutes."},
		{"operator without a recent password", operator, reauth, "Revealing a signing secret needs your password, entered in the last 5 minutes."},
		{"developer revealing", person(keyplane.RoleDeveloper), onlyAdmins, "Only owners and admins may reveal a signing secret."},
		{"viewer changing", person(keyplane.RoleViewer), lacks, "Your role in this workspace (viewer) does not allow this. Only owners, admins and developers change webhook endpoints."},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			d.hookError(w, httptest.NewRequest(http.MethodPost, "/w/one/settings/webhooks/wh_1/reveal", nil), c.v, c.err)
			if w.Code != http.StatusForbidden {
				t.Errorf("status %d, want 403", w.Code)
			}
			got := html.UnescapeString(strings.TrimSpace(reMsg.FindStringSubmatch(w.Body.String() + `id="error-message"></p>`)[1]))
			if got != c.want {
				t.Errorf("the page says %q, want %q", got, c.want)
			}
		})
	}

	// The key and member pages, which only owners and admins use.
	if got := forbiddenMessage(person(keyplane.RoleAdmin), keyplane.Errorf(keyplane.CodeForbidden, "only an owner may do this")); got != "Only an owner may do this." {
		t.Errorf("an admin's refusal: %q", got)
	}
	if got := forbiddenMessage(person(keyplane.RoleDeveloper), lacks); !strings.HasPrefix(got, "Your role in this workspace (developer) does not allow this.") {
		t.Errorf("a developer's refusal: %q", got)
	}
}
