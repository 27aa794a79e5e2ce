package main

import (
	"context"

	"github.com/keyplane/keyplane/client"
)

// sdkLinker asks keyplane for links with the Go SDK. Its client acts on the portal's workspace: a
// root key's client names it (InWorkspace), a workspace key's is its own.
type sdkLinker struct{ kp *client.Client }

func (s sdkLinker) PortalLink(ctx context.Context, u user, returnURL string) (link, error) {
	l, err := s.kp.CreatePortalSession(ctx, client.CreatePortalSessionRequest{
		User:      client.PortalUser{ID: u.ID, Email: u.Email, Name: u.Name},
		Role:      client.Role(u.Role),
		ReturnURL: returnURL,
	})
	if err != nil {
		return link{}, err
	}
	return link{URL: l.URL, ExpiresAt: l.ExpiresAt}, nil
}
