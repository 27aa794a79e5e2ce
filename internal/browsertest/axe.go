package browsertest

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core's axe.min.js, from npm (see testdata/axe-core/README.md for its version and
// how to update it). It is embedded so that the browser tests need no network and no npm install;
// only test binaries import this package, so the program does not carry it.
//
//go:embed testdata/axe-core/axe.min.js
var axeSource string

// AxeTags are the rule sets that CheckAccessibility runs: WCAG 2.0 and 2.1, levels A and AA.
var AxeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa"}

// AxeViolation is one rule that failed on the page, as axe-core reports it.
type AxeViolation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target         []any  `json:"target"` // a selector, or a list of them for a frame or shadow DOM
		FailureSummary string `json:"failureSummary"`
	} `json:"nodes"`
}

// axeRun runs axe over the whole document and keeps only what a report needs: the result of
// axe.run is large.
const axeRun = `axe.run(document, {runOnly: {type: "tag", values: %s}, resultTypes: ["violations"]}).then(r =>
  r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target, failureSummary: n.failureSummary || ""}))})))`

// scriptsOff tells whether the page runs without JavaScript (JSOff): the HTML parser then reads
// the markup inside <noscript>, instead of taking it as text.
const scriptsOff = `!!document.createRange().createContextualFragment("<noscript><b></b></noscript>").querySelector("noscript b")`

// Axe runs axe-core's WCAG 2.1 A and AA rules (AxeTags) on the page that the tab shows and returns
// their violations. On a page opened with JavaScript off (JSOff), it turns JavaScript on for the
// time of the run, as axe needs timers, and off again: the page's own scripts, skipped when it
// loaded, do not run.
func Axe(t testing.TB, ctx context.Context) []AxeViolation {
	t.Helper()
	if Eval[bool](t, ctx, scriptsOff) {
		setScripts(t, ctx, true)
		defer setScripts(t, ctx, false)
	}
	// axe is loaded once per document (the next page needs it again), as a script of its own: wrapped
	// in a function it does not define window.axe.
	if !Eval[bool](t, ctx, `typeof window.axe === "object"`) {
		Run(t, ctx, "load axe-core", chromedp.Evaluate[chromedp.Void](axeSource))
	}
	tags, err := json.Marshal(AxeTags)
	if err != nil {
		t.Fatal(err)
	}
	return Run(t, ctx, "run axe-core", chromedp.Evaluate[[]AxeViolation](fmt.Sprintf(axeRun, tags), chromedp.EvalAwaitPromise))
}

// CheckAccessibility fails the test (without stopping it) for each of axe-core's WCAG 2.1 AA
// violations on the page that the tab shows, naming the page with what: the rule, its impact, what
// it asks for, and the first elements that break it.
func CheckAccessibility(t testing.TB, ctx context.Context, what string) {
	t.Helper()
	for _, v := range Axe(t, ctx) {
		t.Errorf("%s: %s", what, v)
	}
}

// maxTargets is how many elements a report names for one rule; the count says how many there are.
const maxTargets = 3

func (v AxeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "axe %s (%s): %s; %d element(s):", v.ID, v.Impact, v.Help, len(v.Nodes))
	for i, n := range v.Nodes {
		if i == maxTargets {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " %s", target(n.Target))
		if s := strings.Join(strings.Fields(n.FailureSummary), " "); s != "" {
			fmt.Fprintf(&b, " [%s]", s)
		}
		if i < len(v.Nodes)-1 && i < maxTargets-1 {
			b.WriteString(";")
		}
	}
	fmt.Fprintf(&b, " (%s)", v.HelpURL)
	return b.String()
}

// target prints a node's selector; inside a frame or a shadow root it is a path of selectors.
func target(tg []any) string {
	parts := make([]string, 0, len(tg))
	for _, p := range tg {
		switch p := p.(type) {
		case string:
			parts = append(parts, p)
		case []any:
			parts = append(parts, target(p))
		default:
			parts = append(parts, fmt.Sprint(p))
		}
	}
	return strings.Join(parts, " >> ")
}
