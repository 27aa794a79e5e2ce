package dashboard_test

import (
	"crypto/rand"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

var (
	reLogRow   = regexp.MustCompile(`(?s)<tr>\s*<td data-label="When \(UTC\)".*?</tr>`)
	reBar      = regexp.MustCompile(`(?s)<g class="bar"><title>(.*?)</title>(.*?)</g>`)
	reSegment  = regexp.MustCompile(`<rect class="seg (c-[a-z-]+)"`)
	reOlder    = regexp.MustCompile(`href="([^"]*)" id="older"`)
	reChartCap = regexp.MustCompile(`(?s)<figcaption id="chart-title">(.*?)</figcaption>`)
	reTag      = regexp.MustCompile(`<[^>]+>`)
)

// logRows returns the log table's rows as text, one string each.
func logRows(body string) []string {
	var out []string
	for _, m := range reLogRow.FindAllString(body, -1) {
		out = append(out, html.UnescapeString(strings.Join(strings.Fields(reTag.ReplaceAllString(m, " ")), " ")))
	}
	return out
}

// waitLogs polls the logs page at path until it shows want rows (the request log is written in
// batches) and every logged request is in the usage counts (written every usage interval), and
// returns the last answer.
func waitLogs(t *testing.T, p *kpPerson, path string, want int) *exchange {
	t.Helper()
	var e *exchange
	got := 0
	if testkit.Wait(10*time.Second, func() bool {
		e = p.get(t, path)
		expect(t, e, http.StatusOK)
		got = len(logRows(e.body))
		return got == want && strings.Contains(p.get(t, "/metrics").body, "\nkeyplane_usage_uncounted_requests 0\n")
	}) {
		return p.get(t, path) // the page again: its chart read once the counts were in
	}
	if got != want {
		t.Fatalf("%s shows %d log rows, want %d:\n%s", path, got, want, strings.Join(logRows(e.body), "\n"))
	}
	t.Fatalf("%s: the usage counts were not written within 10s", path)
	return nil
}

func testLogs(t *testing.T, s *kpServer) {
	// A workspace of its own, so that other subtests' verifications do not count.
	slug := "logs-" + strings.ToLower(rand.Text()[:6]) // base32: letters and digits only, as a slug wants
	s.createWorkspace(t, slug)
	admin := s.as(t, "admin") // memberships are read per request, but the new workspace needs a fresh view
	ana, anaValue := s.restKey(t, slug, map[string]any{"name": "Ana's server", "keyType": "secret", "ipAllowlist": []string{"198.51.100.0/24"}})
	bob, bobValue := s.restKey(t, slug, map[string]any{"name": "Bob's <script>", "keyType": "secret"})
	base := "/w/" + slug + "/logs"

	e := admin.get(t, base)
	expect(t, e, http.StatusOK)
	expectText(t, e, "No requests yet.", "No requests in this period")
	if bars := reBar.FindAllStringSubmatch(e.body, -1); len(bars) != 24 {
		t.Fatalf("the empty chart has %d bars, want 24 (hours)", len(bars))
	}

	// 3 valid and 2 forbidden for Ana, 1 valid for Bob.
	for _, ip := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "203.0.113.1", "203.0.113.2"} {
		s.verifyCode(t, anaValue, ip)
	}
	if c := s.verifyCode(t, bobValue, ""); c != "VALID" {
		t.Fatalf("Bob's key: %s", c)
	}
	e = waitLogs(t, admin, base, 6)
	rows := logRows(e.body)
	for _, r := range rows {
		if !strings.Contains(r, "verify") || !strings.Contains(r, "POST /v1/verify") {
			t.Errorf("row %q lacks its source or request", r)
		}
	}
	if !strings.Contains(rows[0], "Bob's <script>") || !strings.Contains(rows[0], bob) || !strings.Contains(rows[0], "VALID") {
		t.Errorf("newest row %q: want Bob's key, by name and id, VALID", rows[0])
	}
	if strings.Contains(e.body, "Bob's <script>") || !strings.Contains(e.body, "Bob&#39;s &lt;script&gt;") {
		t.Error("a key's name is not escaped")
	}
	if !strings.Contains(rows[1], "FORBIDDEN") || !strings.Contains(rows[1], "203.0.113.2") {
		t.Errorf("second row %q: want FORBIDDEN from 203.0.113.2", rows[1])
	}
	// The chart: the current hour's bar holds all 6, stacked valid then forbidden.
	bars := reBar.FindAllStringSubmatch(e.body, -1)
	last := bars[len(bars)-1]
	if !strings.Contains(last[1], "6 requests, 4 valid, 2 forbidden") {
		t.Errorf("the current hour's bar says %q", last[1])
	}
	var classes []string
	for _, m := range reSegment.FindAllStringSubmatch(last[2], -1) {
		classes = append(classes, m[1])
	}
	if strings.Join(classes, " ") != "c-valid c-forbidden" {
		t.Errorf("the current hour's bar stacks %v, want valid then forbidden", classes)
	}
	expectText(t, e, "6 requests, 4 valid")

	// Filters: by key, code, source and time, each combination the table and, for the key, the chart.
	for _, c := range []struct {
		query string
		rows  int
	}{
		{"?key=" + ana, 5},
		{"?key=" + bob, 1},
		{"?code=FORBIDDEN", 2},
		{"?key=" + ana + "&code=VALID", 3},
		{"?source=verify", 6},
		{"?source=jwt", 0},
		{"?since=" + time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04"), 0},
		{"?until=" + time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04"), 6},
	} {
		e := admin.get(t, base+c.query)
		expect(t, e, http.StatusOK)
		if got := len(logRows(e.body)); got != c.rows {
			t.Errorf("%s: %d rows, want %d", c.query, got, c.rows)
		}
	}
	e = admin.get(t, base+"?key="+ana+"&range=30d")
	if cp := first(reChartCap, e.body); !strings.Contains(cp, "Requests per day of Ana's server, last 30 days") {
		t.Errorf("Ana's chart is titled %q", cp)
	}
	if bars := reBar.FindAllStringSubmatch(e.body, -1); len(bars) != 30 || !strings.Contains(bars[29][1], "5 requests, 3 valid, 2 forbidden") {
		t.Errorf("Ana's daily chart: %d bars, the last %q", len(bars), bars[len(bars)-1][1])
	}
	if !strings.Contains(e.body, `name="range" value="30d"`) {
		t.Error("the filter form does not keep the chart's range")
	}

	// Pagination: pages of 50, no entry twice.
	for range 55 {
		s.verifyCode(t, bobValue, "")
	}
	// The log is written in batches: wait until all 56 are there, 50 on the first page and 6 after.
	var next string
	var page2 *exchange
	testkit.Wait(10*time.Second, func() bool { // the checks below say what is missing
		e = waitLogs(t, admin, base+"?key="+bob, 50)
		if next = first(reOlder, e.body); next == "" {
			return false
		}
		page2 = admin.get(t, next)
		return len(logRows(page2.body)) == 6
	})
	if next == "" || !strings.Contains(next, "key="+bob) {
		t.Fatalf("no link to older entries that keeps the filter: %q", next)
	}
	if got := len(logRows(page2.body)); got != 6 {
		t.Errorf("the second page of Bob's entries has %d rows, want 6", got)
	}
	if first(reOlder, page2.body) != "" {
		t.Error("the last page links to older entries")
	}

	// Bad filters: a message, not an error page; nothing listed.
	for _, c := range []struct{ query, msg string }{
		{"?code=MAYBE", "Outcome must be a verification code"},
		{"?source=carrier-pigeon", "Source must be verify"},
		{"?key=not-a-key", "Key must be an API key id"},
		{"?since=yesterday", "From: enter a date and time"},
		{"?until=2026-13-45T99:99", "To: enter a date and time"},
		{"?since=2030-01-02T00:00&until=2030-01-01T00:00", "To must be after since"},
		{"?cursor=%ff%00garbage", "start again from the newest entries"},
	} {
		e := admin.get(t, base+c.query)
		expect(t, e, http.StatusOK)
		if msg := first(regexp.MustCompile(`(?s)id="filter-error">(.*?)</div>`), e.body); !strings.Contains(msg, c.msg) {
			t.Errorf("%s: message %q, want it to contain %q", c.query, msg, c.msg)
		}
		if n := len(logRows(e.body)); n != 0 {
			t.Errorf("%s: %d rows listed", c.query, n)
		}
	}
	// A key of another workspace has no chart and no rows here; its id is not found.
	other, _ := s.restKey(t, "default", map[string]any{"name": "elsewhere", "keyType": "secret"})
	e = admin.get(t, base+"?key="+other)
	expect(t, e, http.StatusOK)
	if n := len(logRows(e.body)); n != 0 {
		t.Errorf("another workspace's key: %d rows", n)
	}

	// The key's own page has its chart and a link to its requests.
	e = admin.get(t, "/w/"+slug+"/settings/api/"+ana)
	expect(t, e, http.StatusOK)
	bars = reBar.FindAllStringSubmatch(e.body, -1)
	if len(bars) != 24 || !strings.Contains(bars[23][1], "5 requests, 3 valid, 2 forbidden") {
		t.Errorf("the key page's chart: %d bars, the last %q", len(bars), bars[len(bars)-1][1])
	}
	if !strings.Contains(e.body, `href="/w/`+slug+`/logs?key=`+ana+`" id="key-logs"`) {
		t.Error("the key page does not link to the key's requests")
	}

	// Every role reads the logs; only those who see keys see their names. Others are not members.
	for _, who := range []string{"viewer", "developer"} {
		e := s.as(t, who).get(t, "/w/default/logs")
		expect(t, e, http.StatusOK)
		if strings.Contains(e.body, `<select id="key"`) {
			t.Errorf("%s is offered the keys by name", who)
		}
		expectRedirect(t, s.as(t, who).get(t, "/w/default"), "/w/default/logs")
	}
	errorPage(t, s.as(t, "owner2").get(t, base), http.StatusNotFound, "There is no workspace here")
}
