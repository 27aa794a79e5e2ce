package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
)

// Identities

// ListIdentities lists one page of the workspace's identities, newest first (identities:read).
func (c *Client) ListIdentities(ctx context.Context, p ListParams) (*Page[Identity], error) {
	q := url.Values{}
	addPage(q, p.Limit, p.Cursor)
	return list[Identity](ctx, c, "/v1/identities", q)
}

// AllIdentities ranges over every identity of the workspace.
func (c *Client) AllIdentities(ctx context.Context, p ListParams) iter.Seq2[Identity, error] {
	return All(ctx, p.Cursor, func(ctx context.Context, cursor string) (*Page[Identity], error) {
		p.Cursor = cursor
		return c.ListIdentities(ctx, p)
	})
}

// CreateIdentity creates an identity (identities:write); an externalId another identity has is
// CodeIdentityExists.
func (c *Client) CreateIdentity(ctx context.Context, req CreateIdentityRequest) (*Identity, error) {
	var out Identity
	if err := c.post(ctx, "/v1/identities", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetIdentity reads an identity (identities:read).
func (c *Client) GetIdentity(ctx context.Context, id string) (*Identity, error) {
	var out Identity
	if _, err := c.get(ctx, "/v1/identities/"+seg(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateIdentity changes an identity (identities:write); every key of it sees the change at once.
func (c *Client) UpdateIdentity(ctx context.Context, id string, req UpdateIdentityRequest) (*Identity, error) {
	var out Identity
	if err := c.patch(ctx, "/v1/identities/"+seg(id), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteIdentity deletes an identity no key belongs to any more (identities:write): CodeIdentityInUse
// while one does (revoked keys count).
func (c *Client) DeleteIdentity(ctx context.Context, id string) (*DeletedIdentity, error) {
	var out DeletedIdentity
	if _, err := c.do(ctx, call{method: http.MethodDelete, path: "/v1/identities/" + seg(id)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ChangeIdentityCredits sets, increments or decrements an identity's shared balance and answers it
// after (identities:write). Increment and decrement need a balance; a decrement stops at 0.
func (c *Client) ChangeIdentityCredits(ctx context.Context, id string, op CreditsOperation) (*Credits, error) {
	var out Credits
	if err := c.post(ctx, "/v1/identities/"+seg(id)+"/credits", op, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ChangeAPIKeyCredits sets, increments or decrements a key's own balance and answers it after
// (api_keys:write). Increment and decrement need a balance; a decrement stops at 0.
func (c *Client) ChangeAPIKeyCredits(ctx context.Context, id string, op CreditsOperation) (*Credits, error) {
	var out Credits
	if err := c.post(ctx, "/v1/api-keys/"+seg(id)+"/credits", op, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Usage export

func (p ExportUsageParams) query(format string) url.Values {
	q := query("groupBy", string(p.GroupBy), "granularity", string(p.Granularity), "format", format)
	addTime(q, "since", p.Since)
	addTime(q, "until", p.Until)
	return q
}

// openExport starts GET /v1/usage and returns the answer's body, or the API's error.
func (c *Client) openExport(ctx context.Context, p ExportUsageParams, format, accept string) (io.ReadCloser, error) {
	res, err := c.send(ctx, call{method: http.MethodGet, path: "/v1/usage", query: p.query(format)}, accept)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		var env envelope
		env.Data = new(json.RawMessage)
		if json.Unmarshal(b, &env) == nil && env.Error != nil {
			e := &Error{StatusCode: res.StatusCode, Code: env.Error.Code, Message: env.Error.Message, RequestID: env.Error.RequestID,
				Details: env.Error.Details, RetryAfter: retryAfter(res.Header)}
			if e.RequestID == "" {
				e.RequestID = res.Header.Get("X-Request-Id")
			}
			return nil, e
		}
		return nil, httpError(res.StatusCode, res.Header, b)
	}
	return res.Body, nil
}

// ExportUsageCSV streams the usage export as CSV (logs:read): a header row (keyId or identityId,
// externalId, start, total, valid, creditsSpent, then one column per verification code) and a row per
// group and period. The caller reads and closes it; an export cut short by the server ends without
// its last line.
func (c *Client) ExportUsageCSV(ctx context.Context, p ExportUsageParams) (io.ReadCloser, error) {
	return c.openExport(ctx, p, "csv", "text/csv")
}

// ExportUsage ranges over the rows of the usage export (logs:read), decoding the JSON answer as it
// streams in, so that an export of any size holds one row in memory. An error ends the range.
func (c *Client) ExportUsage(ctx context.Context, p ExportUsageParams) iter.Seq2[UsageRow, error] {
	return func(yield func(UsageRow, error) bool) {
		body, err := c.openExport(ctx, p, "json", "application/json")
		if err != nil {
			yield(UsageRow{}, err)
			return
		}
		defer body.Close()
		dec := json.NewDecoder(body)
		if err := expectTokens(dec, json.Delim('{'), "success", true, "data", json.Delim('[')); err != nil {
			yield(UsageRow{}, err)
			return
		}
		for dec.More() {
			var row UsageRow
			if err := dec.Decode(&row); err != nil {
				yield(UsageRow{}, fmt.Errorf("keyplane: usage export: %w", err))
				return
			}
			if !yield(row, nil) {
				return
			}
		}
		if err := expectTokens(dec, json.Delim(']'), json.Delim('}')); err != nil {
			yield(UsageRow{}, err)
		}
	}
}

// expectTokens reads the JSON tokens want from dec, in order.
func expectTokens(dec *json.Decoder, want ...json.Token) error {
	for _, w := range want {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("keyplane: usage export: %w", err)
		}
		if t != w {
			return fmt.Errorf("keyplane: usage export: the answer is not the export's JSON (%v where %v was expected)", t, w)
		}
	}
	return nil
}
