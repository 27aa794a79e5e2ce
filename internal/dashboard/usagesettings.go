package dashboard

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// The settings of usage-based keys that keys and identities share: a balance of credits with its
// refill, and named rate limits. Both pages show the same two forms (templates "credits" and
// "limits" in layout.html); the forms only translate fields, the service checks them.

// creditsForm is the credits form as the person filled it in.
type creditsForm struct {
	Limited   bool   // a balance; false: unlimited
	Remaining string // a number
	Interval  string // "", "daily" or "monthly"
	Amount    string
	Day       string
}

// limitRow is one row of the rate limits form; the last row of a page is empty, for a new limit.
type limitRow struct {
	Index  int
	Name   string
	Limit  string
	Window string // seconds
	Auto   bool
	New    bool // the empty row
}

// usageSettings is what the "credits" and "limits" templates show.
type usageSettings struct {
	Base      string // the page's path: the forms post to Base/credits and Base/limits
	CSRF      string
	Credits   *keyplane.Credits
	Form      creditsForm
	Rows      []limitRow
	Errors    map[string]string
	CanEdit   bool
	OfKey     bool // a key's, whose limit named default is its rateLimit
	MaxLimits int
}

func creditsFormOf(c *keyplane.Credits) creditsForm {
	if c == nil {
		return creditsForm{}
	}
	f := creditsForm{Limited: true, Remaining: strconv.FormatInt(c.Remaining, 10)}
	if r := c.Refill; r != nil {
		f.Interval, f.Amount = string(r.Interval), strconv.FormatInt(r.Amount, 10)
		if r.Interval == keyplane.RefillMonthly {
			f.Day = strconv.Itoa(max(r.RefillDay, 1))
		}
	}
	return f
}

func limitRowsOf(list []keyplane.NamedRateLimit) []limitRow {
	rows := make([]limitRow, 0, len(list)+1)
	for i, l := range list {
		rows = append(rows, limitRow{Index: i, Name: l.Name, Limit: strconv.FormatInt(l.Limit, 10), Window: windowSeconds(l.WindowMs), Auto: l.AutoApply})
	}
	return withNewRow(rows)
}

// withNewRow adds the empty row for a new limit while there is room for one.
func withNewRow(rows []limitRow) []limitRow {
	if len(rows) < keyplane.MaxNamedLimits {
		rows = append(rows, limitRow{Index: len(rows), New: true, Auto: true})
	}
	return rows
}

// windowSeconds shows a window in seconds, with a fraction only when it has one.
func windowSeconds(ms int64) string {
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10)
	}
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
}

func newUsageSettings(v *view, base string, c *keyplane.Credits, limits []keyplane.NamedRateLimit, canEdit, ofKey bool) usageSettings {
	return usageSettings{Base: base, CSRF: v.CSRF, Credits: c, Form: creditsFormOf(c), Rows: limitRowsOf(limits), CanEdit: canEdit, OfKey: ofKey,
		MaxLimits: keyplane.MaxNamedLimits}
}

// number reads a whole number field; a blank one is nil. A field that is not a number gets msg.
func number(s, field, msg string, errs map[string]string) *int64 {
	s = strings.TrimSpace(strings.ReplaceAll(s, "_", ""))
	if s == "" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		errs[field] = msg
		return nil
	}
	return &n
}

// readCreditsForm reads the credits form into the service's input: nil for unlimited.
func readCreditsForm(r *http.Request, errs map[string]string) (creditsForm, *service.CreditsInput) {
	f := creditsForm{Limited: r.PostFormValue("credits") == "limited", Remaining: r.PostFormValue("remaining"),
		Interval: r.PostFormValue("refillInterval"), Amount: r.PostFormValue("refillAmount"), Day: r.PostFormValue("refillDay")}
	if !f.Limited {
		return f, nil
	}
	in := &service.CreditsInput{Remaining: number(f.Remaining, "remaining", "Remaining credits must be a whole number, such as 1000.", errs)}
	if strings.TrimSpace(f.Remaining) == "" && f.Interval == "" {
		errs["remaining"] = "Enter the remaining credits, or choose a refill (the balance then starts at its amount)."
	}
	if f.Interval != "" {
		ref := &service.RefillInput{Interval: keyplane.RefillInterval(f.Interval),
			Amount: number(f.Amount, "refillAmount", "The refill amount must be a whole number, such as 1000.", errs)}
		if ref.Amount == nil && errs["refillAmount"] == "" {
			errs["refillAmount"] = "Enter how many credits each refill sets the balance to."
		}
		if ref.Interval == keyplane.RefillMonthly {
			if d := number(f.Day, "refillDay", "The refill day must be a day of the month, from 1 to 31.", errs); d != nil {
				day := int(max(min(*d, 1000), -1000))
				ref.RefillDay = &day
			}
		}
		in.Refill = ref
	}
	return f, in
}

// maxLimitRows bounds the rows read from a form: a key's 10 limits and the empty row.
const maxLimitRows = keyplane.MaxNamedLimits + 1

// readLimitsForm reads the rate limits form: the rows kept (not removed, not left empty) become the
// list, and at[i] is the form row of the list's entry i, to put the service's errors next to it.
func readLimitsForm(r *http.Request, errs map[string]string) (rows []limitRow, list []keyplane.NamedRateLimit, at []int) {
	n, _ := strconv.Atoi(r.PostFormValue("rows"))
	n = max(0, min(n, maxLimitRows))
	for i := range n {
		p := "limit-" + strconv.Itoa(i) + "-"
		row := limitRow{Index: len(rows), Name: strings.TrimSpace(r.PostFormValue(p + "name")), Limit: r.PostFormValue(p + "limit"),
			Window: r.PostFormValue(p + "window"), Auto: r.PostFormValue(p+"auto") == "on", New: r.PostFormValue(p+"new") == "true"}
		if r.PostFormValue(p+"remove") == "on" || row.New && row.Name == "" && strings.TrimSpace(row.Limit) == "" && strings.TrimSpace(row.Window) == "" {
			continue
		}
		q := "limit-" + strconv.Itoa(row.Index) + "-"
		l := keyplane.NamedRateLimit{Name: row.Name, AutoApply: row.Auto}
		if v := number(row.Limit, q+"limit", "The limit must be a whole number of requests, such as 100.", errs); v != nil {
			l.Limit = *v
		} else if errs[q+"limit"] == "" {
			errs[q+"limit"] = "Enter how many requests the window allows."
		}
		if ms, ok := windowMs(row.Window); ok {
			l.WindowMs = ms
		} else {
			errs[q+"window"] = "Enter the window in seconds, from 1 to 86400 (one day)."
		}
		row.New = false
		rows = append(rows, row)
		list = append(list, l)
		at = append(at, row.Index)
	}
	return rows, list, at
}

// windowMs reads a window in seconds (a fraction allowed, to the millisecond).
func windowMs(s string) (int64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != f || f < 0 || f > 1e9 {
		return 0, false
	}
	return int64(f*1000 + 0.5), true
}

var reLimitField = regexp.MustCompile(`^rateLimits\[(\d+)\]\.(name|limit|windowMs|autoApply)$`)

// usageFieldErrors maps the service's errors about credits, rate limits and the identity to the
// forms' fields; at maps the list's entries to form rows (nil when no limits were sent). Nil when
// err is not a validation error.
func usageFieldErrors(err error, at []int) map[string]string {
	return formErrors(err, func(fe keyplane.FieldError) (string, string) {
		msg := fe.Message
		switch fe.Field {
		case "credits.remaining":
			return "remaining", sentence(labelledAs("Remaining credits", msg))
		case "credits.refill.amount":
			return "refillAmount", sentence(labelledAs("The refill amount", msg))
		case "credits.refill.refillDay":
			return "refillDay", sentence(labelledAs("The refill day", msg))
		case "credits.refill.interval":
			return "refillInterval", sentence(labelledAs("The refill", msg))
		case "rateLimits":
			return "rateLimits", sentence(labelledAs("Rate limits", msg))
		case "externalId", "identityId":
			return "externalId", sentence(labelledAs("The external id", msg))
		case "meta":
			return "meta", sentence(labelledAs("Metadata", msg))
		}
		if m := reLimitField.FindStringSubmatch(fe.Field); m != nil {
			i, _ := strconv.Atoi(m[1])
			row := i
			if i < len(at) {
				row = at[i]
			}
			p := "limit-" + strconv.Itoa(row) + "-"
			switch m[2] {
			case "name":
				return p + "name", sentence(labelledAs("The name", msg))
			case "limit":
				return p + "limit", sentence(labelledAs("The limit", msg))
			case "windowMs":
				return p + "window", "The window must be from 1 to 86400 seconds (one day)."
			case "autoApply":
				return p + "auto", "The limit named default is the key's own rate limit: it always applies, so keep “Apply to every verification” ticked."
			}
		}
		return "form", sentence(labelled(fe.Field, msg))
	})
}

// labelledAs puts label before a message that reads as its predicate.
func labelledAs(label, msg string) string {
	for _, p := range []string{"must ", "is ", "at most", "cannot", "only ", "has "} {
		if strings.HasPrefix(msg, p) {
			return label + " " + msg
		}
	}
	return msg
}
