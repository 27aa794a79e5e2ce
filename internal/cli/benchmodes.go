package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/keyplane/keyplane/internal/bench"
)

// pacedSenders bounds a paced run's requests in flight: far more than a steady 2,500/s needs (about
// one at a time at a fraction of a millisecond each), so that a stall of the server, not a lack of
// senders, is what delays requests.
const pacedSenders = 128

// benchClient is an HTTP client for paced runs, keeping as many connections as there are senders.
func benchClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: pacedSenders, MaxIdleConnsPerHost: pacedSenders}}
}

// verifySender returns a send function for bench.Paced that verifies a key of keys, drawn uniformly
// by the request's number (so that keyplane and the ceiling are sent the same draws), at baseURL.
func verifySender(client *http.Client, baseURL, rootKey string, keys []string) func(context.Context, int64) error {
	return func(ctx context.Context, i int64) error {
		k := keys[splitmix(uint64(i))%uint64(len(keys))]
		return post(ctx, client, baseURL+"/v1/verify", rootKey, "", `{"key":"`+k+`"}`, http.StatusOK)
	}
}

// verifyEach verifies every key of keys once at baseURL, a few at a time, and fails unless each is
// answered 200.
func verifyEach(ctx context.Context, client *http.Client, baseURL, rootKey string, keys []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, k := range keys {
		g.Go(func() error {
			return post(ctx, client, baseURL+"/v1/verify", rootKey, "", `{"key":"`+k+`"}`, http.StatusOK)
		})
	}
	return g.Wait()
}

// splitmix is SplitMix64's mix of x: a uniform, repeatable draw per request number, without a
// generator's state or an allocation.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// post sends body and fails unless the answer has the status want; the answer is read to its end, so
// that the connection is reused.
func post(ctx context.Context, client *http.Client, url, bearer, workspace, body string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	if workspace != "" {
		req.Header.Set("X-Workspace-Id", workspace)
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// rateRow is one run of the constant-rate mode: keyplane's latencies and the ceiling's, and
// keyplane's store reads meanwhile.
type rateRow struct {
	kp, ceil bench.Latencies
	reads    float64
}

// benchRate drives a constant rate of verifications over o.rateKeys keys, on keyplane and then on
// the ceiling, o.runs times, and returns the table row of the medians. With a warm-up (--warmup),
// every key is verified once on both first: the mode measures a node's steady state, in which the
// keys it is asked about are cached and its connections open, as the wrk mixes' warm-up gives
// theirs. Without one, the first run's latencies are mostly those of first reads (a uniform draw of
// 20,000 over 20,000 keys meets 12,600 of them), which the uniform mix measures already.
func (p *Program) benchRate(ctx context.Context, o *benchOptions, storeName string, seed *benchSeeded, srv *benchServer, ceilingURL string) (string, error) {
	keys := seed.values[:min(o.rateKeys, len(seed.values))]
	load := bench.Paced{Rate: o.rate, Duration: o.load.Duration, Senders: pacedSenders}
	client := benchClient()
	defer client.CloseIdleConnections()
	if o.warmup > 0 {
		for _, url := range []string{srv.url, ceilingURL} {
			if err := verifyEach(ctx, client, url, seed.verifyRoot, keys); err != nil {
				return "", fmt.Errorf("bench: constant rate: warm-up: %w", err)
			}
		}
	}
	var runs []rateRow
	for run := range o.runs {
		var r rateRow
		readsBefore, _ := srv.metric("keyplane_verify_cache_misses_total")
		r.kp = load.Run(ctx, verifySender(client, srv.url, seed.verifyRoot, keys))
		readsAfter, _ := srv.metric("keyplane_verify_cache_misses_total")
		r.reads = readsAfter - readsBefore
		r.ceil = load.Run(ctx, verifySender(client, ceilingURL, seed.verifyRoot, keys))
		if r.kp.Errors > 0 || r.ceil.Errors > 0 {
			return "", fmt.Errorf("bench: constant rate: %d errors from keyplane, %d from the ceiling", r.kp.Errors, r.ceil.Errors)
		}
		fmt.Fprintf(p.Stderr, "bench: %s: constant rate, run %d: keyplane p99 %s, ceiling p99 %s\n", storeName, run+1, ms(r.kp.P99), ms(r.ceil.P99))
		runs = append(runs, r)
	}
	med := func(f func(rateRow) time.Duration) time.Duration {
		return bench.Median(mapSlice(runs, f))
	}
	kp50, kp99, kp999 := med(func(r rateRow) time.Duration { return r.kp.P50 }), med(func(r rateRow) time.Duration { return r.kp.P99 }), med(func(r rateRow) time.Duration { return r.kp.P999 })
	c50, c99, c999 := med(func(r rateRow) time.Duration { return r.ceil.P50 }), med(func(r rateRow) time.Duration { return r.ceil.P99 }), med(func(r rateRow) time.Duration { return r.ceil.P999 })
	rps := bench.Median(mapSlice(runs, func(r rateRow) float64 { return r.kp.RPS() }))
	late := bench.Median(mapSlice(runs, func(r rateRow) int64 { return r.kp.Late + r.ceil.Late }))
	reads := bench.Median(mapSlice(runs, func(r rateRow) float64 { return r.reads }))
	return fmt.Sprintf("| %s | %.0f/s over %d keys | %.0f | %s | %s | %s | %s | %s | %s | %.2f | %d | %.0f |", storeName, o.rate, len(keys), rps,
		ms(kp50), ms(kp99), ms(kp999), ms(c50), ms(c99), ms(c999), float64(kp99)/float64(max(c99, 1)), late, reads), nil
}

// manageRow is one run of management under a flood: keyplane's creations and its flood, and the
// ceiling's requests under its own.
type manageRow struct {
	create, ceil bench.Latencies
	verify       bench.Result
}

// benchManage drives verification flat out with wrk over the keys of file while it creates keys
// through the API at o.createRate, o.runs times, and returns the table row of the medians. Each run
// is followed by its reference: the ceiling under the same flood, sent a verification at the same
// pace. That is the tail any request has on this machine while wrk floods the server beside it, the
// least a creation could have.
func (p *Program) benchManage(ctx context.Context, o *benchOptions, storeName string, seed *benchSeeded, srvURL, ceilingURL, wrk, dir, file string) (string, error) {
	client := benchClient()
	defer client.CloseIdleConnections()
	var runs []manageRow
	for run := range o.runs {
		var r manageRow
		var err error
		r.create, r.verify, err = underFlood(ctx, o, wrk, dir, srvURL, seed.verifyRoot, file, func(ctx context.Context, i int64) error {
			body := fmt.Sprintf(`{"name":"flood %d-%d","keyType":"secret"}`, run, i)
			// Round the seeded workspaces, as a platform's customers make their keys: one workspace's
			// changes are serialized (its audit chain), and 50 a second into one would measure the
			// queue for it on PostgreSQL, where a creation's round trips take ~20 ms under the flood.
			ws := seed.workspaces[int(i)%len(seed.workspaces)]
			return post(ctx, client, srvURL+"/v1/api-keys", seed.adminRoot, ws, body, http.StatusCreated)
		})
		if err != nil {
			return "", err
		}
		if r.ceil, _, err = underFlood(ctx, o, wrk, dir, ceilingURL, seed.verifyRoot, file, verifySender(client, ceilingURL, seed.verifyRoot, seed.values)); err != nil {
			return "", fmt.Errorf("%w (the ceiling)", err)
		}
		fmt.Fprintf(p.Stderr, "bench: %s: management under a flood, run %d: %d creations, p99 %s, %.0f verifications/s; the ceiling's p99 %s\n",
			storeName, run+1, r.create.Sent, ms(r.create.P99), r.verify.RPS, ms(r.ceil.P99))
		runs = append(runs, r)
	}
	med := func(f func(manageRow) time.Duration) time.Duration { return bench.Median(mapSlice(runs, f)) }
	p99, c99 := med(func(r manageRow) time.Duration { return r.create.P99 }), med(func(r manageRow) time.Duration { return r.ceil.P99 })
	return fmt.Sprintf("| %s | %.0f/s | %d | %s | %s | %s | %.0f | %s | %s | %.2f |", storeName, o.createRate,
		bench.Median(mapSlice(runs, func(r manageRow) int64 { return r.create.Sent })),
		ms(med(func(r manageRow) time.Duration { return r.create.P50 })), ms(p99),
		ms(med(func(r manageRow) time.Duration { return r.create.Max })),
		bench.Median(mapSlice(runs, func(r manageRow) float64 { return r.verify.RPS })),
		ms(med(func(r manageRow) time.Duration { return r.ceil.P50 })), ms(c99), float64(p99)/float64(max(c99, 1))), nil
}

// underFlood drives verification flat out with wrk at url while it calls send at o.createRate, and
// returns send's latencies and wrk's result; it fails when any request did.
func underFlood(ctx context.Context, o *benchOptions, wrk, dir, url, bearer, file string, send func(context.Context, int64) error) (bench.Latencies, bench.Result, error) {
	var flood bench.Result
	var ferr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		flood, ferr = bench.Drive(ctx, wrk, dir, url, bearer, file, o.load)
	}()
	// The paced requests start once wrk is up to speed and stop before it does, so that each meets
	// the flood; a fraction of a second at each end is enough.
	edge := min(o.load.Duration/10, time.Second)
	select {
	case <-time.After(edge):
	case <-ctx.Done():
	}
	paced := bench.Paced{Rate: o.createRate, Duration: o.load.Duration - 2*edge, Senders: 8}
	lat := paced.Run(ctx, send)
	wg.Wait()
	if ferr != nil {
		return lat, flood, ferr
	}
	if lat.Errors > 0 || flood.Errors > 0 {
		return lat, flood, fmt.Errorf("bench: management under a flood: %d paced requests failed, %d verifications", lat.Errors, flood.Errors)
	}
	return lat, flood, nil
}

func mapSlice[T, U any](xs []T, f func(T) U) []U {
	out := make([]U, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// soakSample is what the soak reads from the server every soakInterval.
type soakSample struct {
	at              time.Duration
	rss             int64
	lag             time.Duration
	dropped, failed float64
}

// soakInterval is how often the soak samples the server: every 10 s, or a third of a shorter soak.
func soakInterval(soak time.Duration) time.Duration {
	return min(10*time.Second, max(soak/3, time.Second))
}

// benchSoak finds the highest rate keyplane serves the Zipf mix at (a wrk run of --duration), then
// drives 70 % of it at a constant rate for o.soak, sampling the server's memory, how far the request
// log is behind, and its lost entries; it prints the samples and the checks of the soak's budget.
func (p *Program) benchSoak(ctx context.Context, o *benchOptions, storeName string, seed *benchSeeded, srv *benchServer, wrk, dir, dataDir string) error {
	var zipf bench.Scenario
	for _, sc := range bench.Scenarios(seed.prefix, seed.values, o.draws, mrand.New(mrand.NewPCG(1, 2))) {
		if sc.Name == "zipf" {
			zipf = sc
		}
	}
	file := filepath.Join(dir, "soak.keys")
	if err := bench.WriteKeys(file, zipf.Keys); err != nil {
		return err
	}
	top, err := bench.Drive(ctx, wrk, dir, srv.url, seed.verifyRoot, file, o.load)
	if err != nil {
		return err
	}
	rate := 0.7 * top.RPS
	fmt.Fprintf(p.Stdout, "Soak on %s: %s; the Zipf mix's highest rate %.0f/s (wrk, %s), driven at 70 %%: %.0f/s for %s.\n\n",
		storeName, zipf.Description, top.RPS, o.load.Duration, rate, o.soak)
	// The flat-out run's entries are written before the soak starts, so that it starts level.
	if err := waitLogLevel(ctx, srv, 30*time.Second); err != nil {
		return err
	}
	filesBefore, sizeBefore := dirSizes(dataDir)
	verBefore, _ := srv.metricSum("keyplane_verifications_total")
	droppedBefore, _ := srv.metric("keyplane_request_log_dropped_total")
	failedBefore, _ := srv.metric("keyplane_request_log_failed_total")

	client := benchClient()
	defer client.CloseIdleConnections()
	load := bench.Paced{Rate: rate, Duration: o.soak, Senders: pacedSenders}
	done := make(chan bench.Latencies, 1)
	start := time.Now()
	go func() { done <- load.Run(ctx, verifySender(client, srv.url, seed.verifyRoot, zipf.Keys)) }()
	sample := func() soakSample {
		s := soakSample{at: time.Since(start).Round(time.Second), rss: srv.rss()}
		s.lag, _ = logLag(ctx, srv, seed)
		d, _ := srv.metric("keyplane_request_log_dropped_total")
		f, _ := srv.metric("keyplane_request_log_failed_total")
		s.dropped, s.failed = d-droppedBefore, f-failedBefore
		return s
	}
	fmt.Fprintln(p.Stdout, "| time | server RSS | request log lag | dropped | failed |")
	fmt.Fprintln(p.Stdout, "| --- | --- | --- | --- | --- |")
	var samples []soakSample
	tick := time.NewTicker(soakInterval(o.soak))
	var res bench.Latencies
wait:
	for {
		select {
		case res = <-done:
			break wait
		case <-tick.C:
			s := sample()
			samples = append(samples, s)
			fmt.Fprintf(p.Stdout, "| %s | %d MiB | %s | %.0f | %.0f |\n", s.at, s.rss>>20, s.lag.Round(time.Millisecond), s.dropped, s.failed)
		}
	}
	tick.Stop()
	last := sample()
	samples = append(samples, last)
	fmt.Fprintf(p.Stdout, "| %s (end) | %d MiB | %s | %.0f | %.0f |\n\n", last.at, last.rss>>20, last.lag.Round(time.Millisecond), last.dropped, last.failed)
	if res.Errors > 0 {
		return fmt.Errorf("bench: soak: %d of %d verifications failed (see %s)", res.Errors, res.Sent, srv.logPath)
	}

	// Every verification of the Zipf mix finds its key, so each one is an entry of the log: those
	// counted by the server, less those the log lost.
	if err := waitLogLevel(ctx, srv, 30*time.Second); err != nil {
		return err
	}
	verAfter, _ := srv.metricSum("keyplane_verifications_total")
	answered := int64(verAfter - verBefore)
	logged := answered - int64(last.dropped+last.failed)
	filesAfter, sizeAfter := dirSizes(dataDir)

	// The baseline of "flat" is the first sample a tenth of the way in (a minute of a 10-minute
	// soak): the cache fills with the mix's keys over the first seconds, which is not growth.
	base := samples[0]
	for _, s := range samples {
		if s.at >= o.soak/10 {
			base = s
			break
		}
	}
	rssBase, rssMax := base.rss, int64(0)
	var lagMax time.Duration
	for _, s := range samples {
		rssMax, lagMax = max(rssMax, s.rss), max(lagMax, s.lag)
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	perMillion := func(b int64) string {
		if logged <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f MiB", float64(b)/float64(logged)*1e6/(1<<20))
	}
	fmt.Fprintf(p.Stdout, "Sent %d verifications at %.0f/s (p50 %s, p99 %s, p99.9 %s; %d left late); the server counted %d; the log took %d (lost: %.0f dropped, %.0f failed).\n\n",
		res.Sent, res.RPS(), ms(res.P50), ms(res.P99), ms(res.P999), res.Late, answered, logged, last.dropped, last.failed)
	fmt.Fprintln(p.Stdout, "| check | budget | measured | |")
	fmt.Fprintln(p.Stdout, "| --- | --- | --- | --- |")
	fmt.Fprintf(p.Stdout, "| no entry lost | sent = logged | %d sent, %d logged | %s |\n", res.Sent, logged, check(logged == res.Sent))
	fmt.Fprintf(p.Stdout, "| RSS flat | ≤ 110 %% of the sample at %s (%d MiB) | at most %d MiB (%.0f %%) | %s |\n",
		base.at, rssBase>>20, rssMax>>20, 100*float64(rssMax)/float64(max(rssBase, 1)), check(rssMax*10 <= rssBase*11))
	fmt.Fprintf(p.Stdout, "| RSS | ≤ 300 MiB | at most %d MiB | %s |\n", rssMax>>20, check(rssMax <= 300<<20))
	fmt.Fprintf(p.Stdout, "| request log lag | ≤ 5 s | at most %s | %s |\n", lagMax.Round(time.Millisecond), check(lagMax <= 5*time.Second))
	fmt.Fprintf(p.Stdout, "| data dir growth | reported | %d MiB → %d MiB: %s per million entries | |\n\n", sizeBefore>>20, sizeAfter>>20, perMillion(sizeAfter-sizeBefore))
	fmt.Fprintln(p.Stdout, "| file | before | after | per million entries |")
	fmt.Fprintln(p.Stdout, "| --- | --- | --- | --- |")
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range filesAfter {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		fmt.Fprintf(p.Stdout, "| %s | %.1f MiB | %.1f MiB | %s |\n", n, float64(filesBefore[n])/(1<<20), float64(filesAfter[n])/(1<<20), perMillion(filesAfter[n]-filesBefore[n]))
	}
	return nil
}

// dirSizes returns the size of each database file (*.db, and its -wal) in dir, by name relative to
// dir, and the size of everything in dir.
func dirSizes(dir string) (map[string]int64, int64) {
	files := map[string]int64{}
	var total int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		total += info.Size()
		if n := d.Name(); strings.HasSuffix(n, ".db") || strings.HasSuffix(n, ".db-wal") {
			rel, _ := filepath.Rel(dir, path)
			files[rel] = info.Size()
		}
		return nil
	})
	return files, total
}

// logLag is how far the newest entry of the request log of the Zipf mix's hottest key's workspace is
// behind now: read through the API, as an operator would see it.
func logLag(ctx context.Context, srv *benchServer, seed *benchSeeded) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.url+"/v1/logs?limit=1", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+seed.adminRoot)
	req.Header.Set("X-Workspace-Id", seed.workspaces[0])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var page struct {
		Data []struct {
			Timestamp time.Time `json:"timestamp"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil || res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bench: GET /v1/logs: status %d: %v", res.StatusCode, err)
	}
	if len(page.Data) == 0 {
		return 0, fmt.Errorf("bench: the request log is empty")
	}
	return time.Since(page.Data[0].Timestamp), nil
}

// waitLogLevel waits, once a load has stopped, until the request log has written every entry it was
// given: none waits (keyplane_request_log_waiting_entries). The check used to be that the hottest
// workspace's newest entry was within a second of the call, which a load that ended in a trickle (a
// generator that ran late, its last senders one by one) could never pass: the 10-minute soaks of
// 2026-12-04 failed on it with the log never more than 1.6 s behind.
func waitLogLevel(ctx context.Context, srv *benchServer, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		if n, err := srv.metric("keyplane_request_log_waiting_entries"); err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: the request log did not catch up within %s", bound)
}

// metricSum adds up every series of a metric of /metrics (all its labels).
func (s *benchServer) metricSum(name string) (float64, error) {
	res, err := http.Get(s.url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		l := sc.Bytes()
		if !bytes.HasPrefix(l, []byte(name)) || len(l) == len(name) || l[len(name)] != '{' && l[len(name)] != ' ' {
			continue
		}
		f := strings.Fields(string(l[bytes.LastIndexByte(l, ' ')+1:]))
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("bench: no metric %s", name)
	}
	return sum, nil
}
