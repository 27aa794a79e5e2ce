package client

import (
	"context"
	"fmt"
	"iter"
	"net/url"
)

// All ranges over every item of a list, page after page: fetch is called with "" (or the first
// cursor start holds) and then with each page's NextCursor until a page has none. An error ends the
// sequence after yielding it once (with the zero T); breaking out of the loop stops fetching.
//
//	for k, err := range client.All(ctx, "", func(ctx context.Context, cursor string) (*client.Page[client.APIKey], error) {
//		return c.ListAPIKeys(ctx, client.ListAPIKeysParams{Status: client.StatusActive, Cursor: cursor})
//	}) { … }
//
// The All… methods of Client do this for each list.
func All[T any](ctx context.Context, start string, fetch func(ctx context.Context, cursor string) (*Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		cursor := start
		for {
			p, err := fetch(ctx, cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range p.Items {
				if !yield(it, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			if p.NextCursor == cursor {
				var zero T
				yield(zero, fmt.Errorf("keyplane: the list answered the same cursor twice"))
				return
			}
			cursor = p.NextCursor
		}
	}
}

// list fetches one page of a list into a Page.
func list[T any](ctx context.Context, c *Client, path string, q url.Values) (*Page[T], error) {
	var items []T
	next, err := c.get(ctx, path, q, &items)
	if err != nil {
		return nil, err
	}
	if items == nil {
		items = []T{}
	}
	return &Page[T]{Items: items, NextCursor: next}, nil
}
