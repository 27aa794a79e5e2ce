package dashboard

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

// usageRange is a period a usage chart can show: its buckets' width and how many of them.
type usageRange struct {
	Name        string // the query value
	Label       string
	Granularity keyplane.Granularity
	Buckets     int
}

// usageRanges are the chart's choices; the first is the default.
var usageRanges = []usageRange{
	{"24h", "Last 24 hours", keyplane.GranularityHour, 24},
	{"7d", "Last 7 days", keyplane.GranularityHour, 7 * 24},
	{"30d", "Last 30 days", keyplane.GranularityDay, 30},
	{"90d", "Last 90 days", keyplane.GranularityDay, 90},
}

// rangeNamed returns the range of that name, or the default.
func rangeNamed(name string) usageRange {
	for _, r := range usageRanges {
		if r.Name == name {
			return r
		}
	}
	return usageRanges[0]
}

// The chart's drawing area, in the SVG's own units: it scales to its container's width.
const (
	chartWidth  = 760.0
	chartHeight = 220.0
	chartLeft   = 44.0 // room for the y axis labels
	chartRight  = 8.0
	chartTop    = 10.0
	chartBottom = 26.0 // room for the x axis labels
)

// chart is a stacked bar chart of usage, laid out for the template: every number is ready to print.
type chart struct {
	Width, Height float64
	Title         string // what the chart shows, for people and screen readers
	Summary       string // its totals in words
	Empty         bool
	Bars          []chartBar
	Ticks         []chartTick // y axis
	Labels        []chartLabel
	Legend        []legendItem
	Baseline      float64 // y of zero
	MidX, MidY    float64 // the plot's centre
	PlotLeft      float64
	PlotRight     float64
	Rows          []chartRow // the same data as a table, non-empty buckets only
	Range         string
	Links         []rangeLink // the other ranges
}

type chartBar struct {
	X, Width float64
	Tip      string // the bucket's numbers, shown on hover
	Segments []chartSegment
}

type chartSegment struct {
	Class     string
	Y, Height float64
}

type chartTick struct {
	Y     float64
	Label string
}

type chartLabel struct {
	X     float64
	Label string
}

type legendItem struct {
	Class, Label string
	Count        int64
}

type chartRow struct {
	Start  string
	Total  int64
	Valid  int64
	Others string
}

// codeClass is the CSS class that colours a code's part of a bar.
func codeClass(c keyplane.VerifyCode) string {
	return "c-" + strings.ReplaceAll(strings.ToLower(string(c)), "_", "-")
}

// codeLabel says a code in words.
func codeLabel(c keyplane.VerifyCode) string {
	if c == keyplane.VerifyInsufficientPermissions {
		return "insufficient permissions"
	}
	return strings.ReplaceAll(strings.ToLower(string(c)), "_", " ")
}

// niceCeiling returns the smallest of 1, 2, 5 × 10^k that is at least v (and at least 1), and the
// step of four ticks up to it.
func niceCeiling(v int64) (top, step float64) {
	if v < 4 {
		return 4, 1
	}
	raw := float64(v) / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if s := m * mag; s >= raw {
			if s != math.Trunc(s) { // 2.5 of a unit below 10: keep ticks whole
				continue
			}
			return 4 * s, s
		}
	}
	return 40 * mag, 10 * mag
}

// usageChart lays out buckets (oldest first, all of one width) as a bar per bucket, stacked by code:
// VALID at the bottom, then the refusals in the contract's order.
func usageChart(title string, buckets []keyplane.UsageBucket, g keyplane.Granularity) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Title: title, PlotLeft: chartLeft, PlotRight: chartWidth - chartRight,
		Baseline: chartHeight - chartBottom}
	c.MidX, c.MidY = (c.PlotLeft+c.PlotRight)/2, (chartTop+c.Baseline)/2
	var total, valid, peak int64
	perCode := map[keyplane.VerifyCode]int64{}
	for _, b := range buckets {
		total += b.Total
		valid += b.Valid
		peak = max(peak, b.Total)
		for code, n := range b.Codes {
			perCode[code] += n
		}
	}
	c.Empty = total == 0
	c.Summary = fmt.Sprintf("%s, %s valid", count(int(total), "request"), strconv.FormatInt(valid, 10))
	top, step := niceCeiling(peak)
	plotH := c.Baseline - chartTop
	scale := plotH / top
	for v := 0.0; v <= top; v += step {
		c.Ticks = append(c.Ticks, chartTick{Y: round1(c.Baseline - v*scale), Label: shortCount(int64(v))})
	}
	n := len(buckets)
	if n == 0 {
		return c
	}
	slot := (c.PlotRight - c.PlotLeft) / float64(n)
	gap := math.Min(slot*0.2, 6)
	labelEvery := max(1, (n+7)/8)
	for i, b := range buckets {
		x := c.PlotLeft + float64(i)*slot
		bar := chartBar{X: round1(x + gap/2), Width: round1(slot - gap), Tip: bucketTip(b, g)}
		y := c.Baseline
		for _, code := range keyplane.VerifyCodes {
			n := b.Codes[code]
			if n == 0 {
				continue
			}
			h := float64(n) * scale
			y -= h
			bar.Segments = append(bar.Segments, chartSegment{Class: codeClass(code), Y: round1(y), Height: round1(math.Max(h, 0.5))})
		}
		c.Bars = append(c.Bars, bar)
		if (n-1-i)%labelEvery == 0 { // the newest bucket always has its label
			c.Labels = append(c.Labels, chartLabel{X: round1(x + slot/2), Label: bucketLabel(b.Start, g)})
		}
		if b.Total > 0 {
			c.Rows = append(c.Rows, chartRow{Start: bucketStart(b.Start, g), Total: b.Total, Valid: b.Valid, Others: refusals(b)})
		}
	}
	for _, code := range keyplane.VerifyCodes {
		if perCode[code] > 0 {
			c.Legend = append(c.Legend, legendItem{Class: codeClass(code), Label: codeLabel(code), Count: perCode[code]})
		}
	}
	return c
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// shortCount prints an axis value briefly: 950, 1.5k, 12k, 3M.
func shortCount(v int64) string {
	switch {
	case v >= 1_000_000:
		return strconv.FormatFloat(float64(v)/1e6, 'f', -1, 64) + "M"
	case v >= 1000:
		return strconv.FormatFloat(float64(v)/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatInt(v, 10)
}

func bucketLabel(t time.Time, g keyplane.Granularity) string {
	if g == keyplane.GranularityDay {
		return t.UTC().Format("2 Jan")
	}
	if t.UTC().Hour() == 0 {
		return t.UTC().Format("2 Jan")
	}
	return t.UTC().Format("15:04")
}

func bucketStart(t time.Time, g keyplane.Granularity) string {
	if g == keyplane.GranularityDay {
		return t.UTC().Format("Mon 2 Jan 2006")
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

// refusals lists a bucket's codes other than VALID, in the contract's order: "3 rate limited, 1 revoked".
func refusals(b keyplane.UsageBucket) string {
	var parts []string
	for _, code := range keyplane.VerifyCodes {
		if n := b.Codes[code]; n > 0 && code != keyplane.VerifyValid {
			parts = append(parts, strconv.FormatInt(n, 10)+" "+codeLabel(code))
		}
	}
	return strings.Join(parts, ", ")
}

// bucketTip is a bar's hover text.
func bucketTip(b keyplane.UsageBucket, g keyplane.Granularity) string {
	s := bucketStart(b.Start, g) + ": " + count(int(b.Total), "request")
	if b.Total > 0 {
		s += ", " + strconv.FormatInt(b.Valid, 10) + " valid"
		if r := refusals(b); r != "" {
			s += ", " + r
		}
	}
	return s
}
