package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
)

// page reads ?limit (1–100, default 50) and ?cursor.
func page(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return 0, "", invalid("limit", "must be a whole number from 1 to 100")
		}
		limit = n
	}
	cursor := q.Get("cursor")
	if len(cursor) > 200 {
		return 0, "", invalid("cursor", "was not made by this list")
	}
	return limit, cursor, nil
}

func timeParam(r *http.Request, name string) (*time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, invalid(name, "must be an RFC 3339 time such as 2030-01-31T12:00:00Z")
	}
	return &t, nil
}

// listQuery is what every filtered list reads from its query: the page, the since/until range, and
// its text filters.
type listQuery struct {
	limit        int
	cursor       string
	since, until *time.Time
	q            url.Values
}

// readList reads a list's query, checking the named filters so that every store can compare them.
func readList(r *http.Request, filters ...string) (*listQuery, error) {
	lq := &listQuery{q: r.URL.Query()}
	var err error
	if lq.limit, lq.cursor, err = page(r); err != nil {
		return nil, err
	}
	if lq.since, err = timeParam(r, "since"); err != nil {
		return nil, err
	}
	if lq.until, err = timeParam(r, "until"); err != nil {
		return nil, err
	}
	for _, f := range filters {
		if v := lq.q.Get(f); !filterValue(v) {
			return nil, invalid(f, "must be at most 100 printable characters")
		}
	}
	return lq, nil
}

// filterValue accepts a query filter that every store can compare: printable UTF-8, no NUL.
func filterValue(s string) bool {
	return len(s) <= 100 && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

func parseTime(field string, o keyplane.Optional[string]) (keyplane.Optional[time.Time], error) {
	out := keyplane.Optional[time.Time]{Set: o.Set, Null: o.Null}
	if o.Set && !o.Null {
		t, err := time.Parse(time.RFC3339Nano, o.Value)
		if err != nil {
			return out, invalid(field, "must be an RFC 3339 time such as 2030-01-31T12:00:00Z, or null")
		}
		out.Value = t
	}
	return out, nil
}
