package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// sdkLinker asks keyplane for links.
//
// TODO(kp18): the Go SDK's Portal.CreateSession replaces this once it lands; until then this calls
// POST /v1/portal/sessions as the contract (API.md, "Portal sessions") says.
type sdkLinker struct {
	base, key, workspace string
	hc                   *http.Client
}

func (s sdkLinker) PortalLink(ctx context.Context, u user, returnURL string) (link, error) {
	body, _ := json.Marshal(map[string]any{
		"user": map[string]string{"id": u.ID, "email": u.Email, "name": u.Name},
		"role": u.Role, "returnUrl": returnURL,
	})
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/portal/sessions", bytes.NewReader(body))
	if err != nil {
		return link{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	if s.workspace != "" {
		req.Header.Set("X-Workspace-Id", s.workspace)
	}
	res, err := s.hc.Do(req)
	if err != nil {
		return link{}, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var env struct {
		Data struct {
			URL       string    `json:"url"`
			ExpiresAt time.Time `json:"expiresAt"`
		} `json:"data"`
	}
	if res.StatusCode != http.StatusCreated || json.Unmarshal(b, &env) != nil {
		return link{}, fmt.Errorf("POST /v1/portal/sessions: %d %s", res.StatusCode, b)
	}
	return link{URL: env.Data.URL, ExpiresAt: env.Data.ExpiresAt}, nil
}
