package dashboard

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// The logs page's time filters are typed as <input type="datetime-local">, read as UTC like every
// time the dashboard shows.
const localMinute = "2006-01-02T15:04"

type logRow struct {
	Entry    keyplane.RequestLog
	KeyName  string
	Class    string // the code's colour
	Latency  string
	Refusal  bool
	Filtered string // the link that filters the log by this entry's key
}

type keyOption struct {
	ID, Name string
}

type logsData struct {
	Rows    []logRow
	Next    string // the link to the next page, or ""
	Key     string
	KeyName string
	Code    string
	Source  string
	Tag     string
	Since   string
	Until   string
	Error   string
	Keys    []keyOption // the keys to choose from, for people who may see keys
	Codes   []keyplane.VerifyCode
	Sources []keyplane.LogSource
	Chart   chart
	// The usage export's choices, for the "Export usage" form.
	GroupBys      []keyplane.UsageGroup
	Granularities []keyplane.Granularity
	Month         string
}

// readTime reads a datetime-local field (or an RFC 3339 time), as UTC.
func readTime(s string) (*time.Time, bool) {
	if s == "" {
		return nil, true
	}
	for _, layout := range []string{localMinute, localMinute + ":05", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return &t, true
		}
	}
	return nil, false
}

func (d *Dashboard) logsPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Logs"
	q := r.URL.Query()
	ld := logsData{Key: q.Get("key"), Code: q.Get("code"), Source: q.Get("source"), Tag: q.Get("tag"), Since: q.Get("since"), Until: q.Get("until"),
		Codes: keyplane.VerifyCodes, Sources: keyplane.LogSources,
		GroupBys:      []keyplane.UsageGroup{keyplane.GroupByKey, keyplane.GroupByIdentity},
		Granularities: []keyplane.Granularity{keyplane.GranularityDay, keyplane.GranularityHour, keyplane.GranularityMonth},
		Month:         v.Now.UTC().Format("January 2006")}
	f := keyplane.LogFilter{KeyID: ld.Key, Code: keyplane.VerifyCode(ld.Code), Source: keyplane.LogSource(ld.Source), Tag: ld.Tag, Limit: 50, Cursor: q.Get("cursor")}
	since, okSince := readTime(ld.Since)
	until, okUntil := readTime(ld.Until)
	f.Since, f.Until = since, until

	names := map[string]string{}
	if v.Can(keyplane.PermAPIKeysRead) {
		// The filter offers the workspace's newest keys by name; an older key's id still filters.
		keys, _, err := d.svc.ListAPIKeys(r.Context(), v.Caller, v.Workspace.ID, keyplane.KeyFilter{Limit: 100})
		if err != nil {
			d.userError(w, r, v, err)
			return
		}
		for _, k := range keys {
			names[k.ID] = k.Name
			ld.Keys = append(ld.Keys, keyOption{ID: k.ID, Name: k.Name})
		}
		if _, ok := names[ld.Key]; ld.Key != "" && !ok {
			if k, err := d.svc.GetAPIKey(r.Context(), v.Caller, v.Workspace.ID, ld.Key); err == nil {
				names[k.ID] = k.Name
				ld.Keys = append(ld.Keys, keyOption{ID: k.ID, Name: k.Name})
			}
		}
	}
	ld.KeyName = names[ld.Key]

	var entries []keyplane.RequestLog
	var next string
	var err error
	switch {
	case !okSince:
		ld.Error = "From: enter a date and time, like 2026-01-31 14:00."
	case !okUntil:
		ld.Error = "To: enter a date and time, like 2026-01-31 14:00."
	default:
		entries, next, err = d.svc.ListLogs(r.Context(), v.Caller, v.Workspace.ID, f)
		if err != nil {
			if keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
				d.userError(w, r, v, err)
				return
			}
			ld.Error = logsFilterMessage(err)
		}
	}
	for _, e := range entries {
		row := logRow{Entry: e, KeyName: names[e.KeyID], Class: codeClass(e.Code), Latency: latency(e.LatencyMicros),
			Refusal: e.Code != keyplane.VerifyValid, Filtered: withQuery(r.URL, "key", e.KeyID, "cursor", "")}
		ld.Rows = append(ld.Rows, row)
	}
	if next != "" {
		ld.Next = withQuery(r.URL, "cursor", next)
	}

	// The chart: the chosen key's usage, or the whole workspace's. An unknown key has none to show.
	rg := rangeNamed(q.Get("range"))
	title := "Requests per " + string(rg.Granularity) + " of every key, " + lower(rg.Label)
	if ld.Key != "" {
		name := ld.KeyName
		if name == "" {
			name = ld.Key
		}
		title = "Requests per " + string(rg.Granularity) + " of " + name + ", " + lower(rg.Label)
	}
	buckets, err := d.usage(r, v, ld.Key, rg)
	if err != nil && keyplane.ErrorCode(err) != keyplane.CodeNotFound {
		d.userError(w, r, v, err)
		return
	}
	ld.Chart = usageChart(title, buckets, rg.Granularity)
	ld.Chart.Range = rg.Name
	ld.Chart.Links = rangeLinks(r.URL, rg)
	v.Data = ld
	d.render(w, r, http.StatusOK, "logs", v)
}

// usage is the buckets of the range ending with the current one, for a key or (keyID "") the whole
// workspace.
func (d *Dashboard) usage(r *http.Request, v *view, keyID string, rg usageRange) ([]keyplane.UsageBucket, error) {
	width := rg.Granularity.Duration()
	until := v.Now.UTC().Truncate(width).Add(width)
	since := until.Add(-time.Duration(rg.Buckets) * width)
	q := service.UsageQuery{Granularity: rg.Granularity, Since: &since, Until: &until}
	if keyID == "" {
		return d.svc.WorkspaceUsage(r.Context(), v.Caller, v.Workspace.ID, q)
	}
	return d.svc.KeyUsage(r.Context(), v.Caller, v.Workspace.ID, keyID, q)
}

// logsFilterMessage says what is wrong with the filters, in one line.
func logsFilterMessage(err error) string {
	errs := fieldErrors(err)
	if _, ok := errs["cursor"]; ok {
		errs["cursor"] = "This page's link is not valid (the cursor was not made by this list): start again from the newest entries."
	}
	fields := slices.Sorted(maps.Keys(errs))
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = errs[f]
	}
	return strings.Join(msgs, " ")
}

func lower(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]|0x20) + s[1:]
}

// latency prints microseconds as a person reads them.
func latency(us int64) string {
	switch {
	case us < 1000:
		return strconv.FormatInt(us, 10) + " µs"
	case us < 10_000:
		return strconv.FormatFloat(float64(us)/1000, 'f', 1, 64) + " ms"
	}
	return strconv.FormatInt(us/1000, 10) + " ms"
}

// withQuery returns u's path and query with the given keys set to the values that follow them; an
// empty value removes the key.
func withQuery(u *url.URL, kv ...string) string {
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return u.Path
	}
	return u.Path + "?" + q.Encode()
}

type rangeLink struct {
	Label, Href string
	Current     bool
}

// rangeLinks links every range of the chart, keeping the page's other filters.
func rangeLinks(u *url.URL, cur usageRange) []rangeLink {
	out := make([]rangeLink, len(usageRanges))
	for i, rg := range usageRanges {
		out[i] = rangeLink{Label: rg.Label, Href: withQuery(u, "range", rg.Name), Current: rg.Name == cur.Name}
	}
	return out
}
