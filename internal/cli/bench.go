package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/bench"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store/postgres"
)

// keysPerWorkspace spreads the seeded keys over workspaces as a platform's are spread over its
// customers.
const keysPerWorkspace = 10_000

// benchOptions are keyplane bench's flags.
type benchOptions struct {
	keys        int
	draws       int
	stores      []string
	scenarios   map[string]bool
	databaseURL string
	dir         string
	cacheSize   string
	cpuProfile  string
	warmup      time.Duration
	load        bench.Load
	runs        int
	rate        float64 // the constant-rate mode's verifications a second
	rateKeys    int     // and the keys it draws from, uniformly
	createRate  float64 // key creations a second under the flood
	soak        time.Duration
	// rateRows and manageRows are the tables of the constant-rate mode and of management under a
	// flood, printed after the main one.
	rateRows, manageRows []string
}

// modeNames are the scenarios of --scenarios that are not a wrk mix: the constant-rate latencies and
// management under a flood.
var modeNames = []string{"rate", "manage"}

// benchSeeded is what benchSeed made.
type benchSeeded struct {
	verifyRoot, adminRoot string
	prefix                string
	values                []string // once the mixes are written, only the first --rate-keys (benchStore)
	metered               []string // keys with credits and named limits (bench.SeedMetered), when a metered mix runs; then none
	workspaces            []string
	took                  time.Duration
}

// bench seeds each store, runs keyplane serve on it as a child process, and drives every scenario
// against it and against the ceiling handler, printing a Markdown table.
func (p *Program) bench(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "ceiling" {
		return p.benchCeiling(ctx, args[1:])
	}
	o, err := p.benchFlags(args)
	if err != nil {
		return helpOK(err)
	}
	wrk, err := bench.Wrk()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(l[strings.Index(l, ":")+1:])
				break
			}
		}
	}
	fmt.Fprintf(p.Stdout, "keyplane bench: %d keys, %d connections, %d wrk threads, %s per run, median of %d; %d cores (%s), %s; load average %s\n\n",
		o.keys, o.load.Connections, o.load.Threads, o.load.Duration, o.runs, runtime.NumCPU(), cpu, runtime.Version(), loadAverage())
	if o.soak == 0 && slices.ContainsFunc(bench.ScenarioNames, func(n string) bool { return o.scenarios[n] }) {
		fmt.Fprintln(p.Stdout, "| store | scenario | keyplane req/s | p50 | p99 | CPU µs/req | ceiling req/s | p50 | p99 | CPU µs/req | ratio | store reads | server RSS |")
		fmt.Fprintln(p.Stdout, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	}
	for _, st := range o.stores {
		if err := p.benchStore(ctx, o, st, exe, wrk); err != nil {
			return err
		}
	}
	if len(o.rateRows) > 0 {
		fmt.Fprintf(p.Stdout, "\nLatency at a constant rate (open loop: each request timed from when it was due), %s per run:\n\n", o.load.Duration)
		fmt.Fprintln(p.Stdout, "| store | load | keyplane req/s | p50 | p99 | p99.9 | ceiling p50 | p99 | p99.9 | p99 ratio | sent late | store reads |")
		fmt.Fprintln(p.Stdout, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		for _, r := range o.rateRows {
			fmt.Fprintln(p.Stdout, r)
		}
	}
	if len(o.manageRows) > 0 {
		fmt.Fprintf(p.Stdout, "\nKey creation through the API while wrk verifies flat out (uniform mix, %d connections), %s per run; "+
			"the ceiling: a verification at the same pace while wrk floods it alike:\n\n", o.load.Connections, o.load.Duration)
		fmt.Fprintln(p.Stdout, "| store | creations | made | p50 | p99 | max | verifications/s meanwhile | ceiling p50 | p99 | p99 ratio |")
		fmt.Fprintln(p.Stdout, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		for _, r := range o.manageRows {
			fmt.Fprintln(p.Stdout, r)
		}
	}
	return nil
}

// loadAverage is the machine's 1, 5 and 15 minute load averages, from /proc; "unknown" where there
// is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func (p *Program) benchFlags(args []string) (*benchOptions, error) {
	o := &benchOptions{load: bench.Load{Connections: 64, Threads: 2, Duration: 10 * time.Second}}
	fs := flag.NewFlagSet("keyplane bench", flag.ContinueOnError)
	fs.SetOutput(p.Stderr)
	var stores, scenarios string
	fs.IntVar(&o.keys, "keys", 1_000_000, "keys to seed in each store")
	fs.IntVar(&o.draws, "draws", 1_000_000, "requests drawn for each mix (wrk goes round them)")
	fs.StringVar(&stores, "stores", "sqlite,postgres", "stores to measure: sqlite, postgres")
	fs.StringVar(&scenarios, "scenarios", strings.Join(slices.Concat(bench.ScenarioNames, modeNames), ","),
		"scenarios to run: wrk's mixes, and rate (latency at a constant rate) and manage (key creation under a flood)")
	fs.IntVar(&o.runs, "runs", 1, "runs of each scenario; the tables show each figure's median")
	fs.Float64Var(&o.rate, "rate", 2500, "verifications a second of the constant-rate scenario")
	fs.IntVar(&o.rateKeys, "rate-keys", 20_000, "keys the constant-rate scenario draws from, uniformly")
	fs.Float64Var(&o.createRate, "create-rate", 50, "key creations a second of the manage scenario (a p99 needs a few hundred a run)")
	fs.DurationVar(&o.soak, "soak", 0, "instead of the scenarios: find the Zipf mix's highest rate, drive 70 % of it for this long on SQLite, and check the log keeps up and memory stays flat (0: no soak)")
	fs.StringVar(&o.databaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/keyplane_bench?sslmode=disable",
		"PostgreSQL database to drop, recreate and seed; its name must begin with keyplane_bench")
	fs.StringVar(&o.dir, "dir", "", "where the data dir and request files go (default: the system's temp dir); removed afterwards")
	fs.StringVar(&o.cacheSize, "cache-size", "", "the server's --cache-size (default: its own)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the server's CPU profile, over all of a store's runs, to this file (with several stores: the store's name before its extension)")
	fs.IntVar(&o.load.Connections, "connections", o.load.Connections, "wrk connections")
	fs.IntVar(&o.load.Threads, "threads", o.load.Threads, "wrk threads")
	fs.DurationVar(&o.load.Duration, "duration", o.load.Duration, "length of each run")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured run of each mix against keyplane first, so that its cache holds what a running node's would (0: none)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, ErrUsage
	}
	bad := func(f string, a ...any) (*benchOptions, error) {
		fmt.Fprintf(p.Stderr, "keyplane bench: "+f+"\n", a...)
		return nil, ErrUsage
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if o.keys < 1 || o.keys > 10_000_000 || o.draws < 1 || o.draws > 10_000_000 {
		return bad("--keys and --draws must be from 1 to 10000000")
	}
	if o.load.Connections < 1 || o.load.Threads < 1 || o.load.Threads > o.load.Connections || o.load.Duration < time.Second {
		return bad("--connections and --threads must be positive, threads at most connections, and --duration at least 1s")
	}
	if o.soak != 0 && !setFlags(fs)["stores"] {
		stores = "sqlite" // the soak's budget is SQLite's
	}
	for _, s := range strings.Split(stores, ",") {
		if s != "sqlite" && s != "postgres" {
			return bad("unknown store %q", s)
		}
		o.stores = append(o.stores, s)
	}
	o.scenarios = map[string]bool{}
	if o.runs < 1 || o.runs > 100 || o.rate <= 0 || o.rate > 1e6 || o.rateKeys < 1 || o.createRate <= 0 || o.createRate > 1000 {
		return bad("--runs must be from 1 to 100, --rate from 1 to 1000000, --create-rate from 1 to 1000, --rate-keys positive")
	}
	if o.soak != 0 && (o.soak < time.Second || !slices.Equal(o.stores, []string{"sqlite"})) {
		return bad("--soak must be at least 1s, with --stores sqlite")
	}
	for _, s := range strings.Split(scenarios, ",") {
		if !slices.Contains(bench.ScenarioNames, s) && !slices.Contains(modeNames, s) {
			return bad("unknown scenario %q", s)
		}
		o.scenarios[s] = true
	}
	return o, nil
}

// benchStore measures one store: seed, serve, drive.
func (p *Program) benchStore(ctx context.Context, o *benchOptions, storeName, exe, wrk string) error {
	dir, err := bench.TempDir(o.dir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dbURL := ""
	if storeName == "postgres" {
		dbURL = o.databaseURL
		if u, err := url.Parse(dbURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") ||
			!strings.HasPrefix(strings.TrimPrefix(u.Path, "/"), "keyplane_bench") {
			return fmt.Errorf("bench: --database-url must be a postgres:// URL of a database whose name begins with keyplane_bench: it is dropped and recreated")
		}
		if err := postgres.Recreate(ctx, dbURL); err != nil {
			return err
		}
		defer postgres.Drop(context.WithoutCancel(ctx), dbURL)
	}
	env := map[string]string{"KEYPLANE_DATA_DIR": filepath.Join(dir, "data"), "KEYPLANE_DATABASE_URL": dbURL}
	seed, err := p.benchSeed(ctx, env, o.keys, o.scenarios["metered-hot"] || o.scenarios["metered-zipf"])
	if err != nil {
		return err
	}
	fmt.Fprintf(p.Stderr, "bench: %s: seeded %d keys in %s (%.0f keys/s)\n", storeName, o.keys, seed.took.Round(time.Millisecond), float64(o.keys)/seed.took.Seconds())
	rootKey := seed.verifyRoot

	srv, err := startServe(ctx, exe, dir, env, o.cacheSize, o.profileFile(storeName))
	if err != nil {
		return err
	}
	defer srv.stop()
	if o.soak > 0 {
		return p.benchSoak(ctx, o, storeName, seed, srv, wrk, dir, env["KEYPLANE_DATA_DIR"])
	}
	ceil, err := startCeiling(ctx, exe, dir, rootKey, slices.Concat(seed.values, seed.metered))
	if err != nil {
		return err
	}
	defer ceil.stop()

	// Every mix goes to its file first, and the bench then keeps only what it still sends itself: a
	// mix's first key, and the keys the paced modes draw from. Their generator runs in this process,
	// and with 1M keys the mixes, the seeded values and (before it had a process of its own) the
	// ceiling's map were ~600 MB of strings: collections of most of a second each, which slowed the
	// generator and took a core from the server it measured.
	var mixes []bench.Scenario
	all := bench.Scenarios(seed.prefix, seed.values, o.draws, mrand.New(mrand.NewPCG(1, 2)))
	if len(seed.metered) > 0 {
		all = append(all, bench.MeteredScenarios(seed.metered, o.draws, mrand.New(mrand.NewPCG(3, 4)))...)
	}
	for _, sc := range all {
		if !o.scenarios[sc.Name] && !(sc.Name == "uniform" && o.scenarios["manage"]) {
			continue
		}
		if err := bench.WriteKeys(filepath.Join(dir, sc.Name+".keys"), sc.Keys); err != nil {
			return err
		}
		sc.Keys = []string{sc.Keys[0]}
		mixes = append(mixes, sc)
	}
	all = nil
	seed.values, seed.metered = slices.Clone(seed.values[:min(o.rateKeys, len(seed.values))]), nil

	for _, sc := range mixes {
		file := filepath.Join(dir, sc.Name+".keys")
		if code, err := verifyOnce(ctx, srv.url, rootKey, sc.Keys[0]); err != nil || code != sc.Want {
			return fmt.Errorf("bench: %s: the first key answers %s (%v), want %s", sc.Name, code, err, sc.Want)
		}
		if sc.Name == "uniform" && o.scenarios["manage"] {
			row, err := p.benchManage(ctx, o, storeName, seed, srv.url, ceil.url, wrk, dir, file)
			if err != nil {
				return err
			}
			o.manageRows = append(o.manageRows, row)
			if !o.scenarios[sc.Name] {
				continue
			}
		}
		// No warm-up for the each-new unknown keys: it would show them to the cache before the
		// measured run goes round the same file.
		if o.warmup >= time.Second && sc.Name != "unknown" {
			warm := o.load
			warm.Duration = o.warmup
			if _, err := bench.Drive(ctx, wrk, dir, srv.url, rootKey, file, warm); err != nil {
				return err
			}
		}
		var runs []wrkRun
		for range o.runs {
			r, err := p.wrkRun(ctx, o, srv, ceil, wrk, dir, rootKey, file)
			if err != nil {
				return fmt.Errorf("bench: %s: %w", sc.Name, err)
			}
			runs = append(runs, r)
		}
		os.Remove(file)
		med := func(f func(wrkRun) float64) float64 { return bench.Median(mapSlice(runs, f)) }
		medD := func(f func(wrkRun) time.Duration) time.Duration { return bench.Median(mapSlice(runs, f)) }
		fmt.Fprintf(p.Stdout, "| %s | %s | %.0f | %s | %s | %.1f | %.0f | %s | %s | %.1f | %.2f | %.0f | %d MiB |\n", storeName, sc.Description,
			med(func(r wrkRun) float64 { return r.kp.RPS }), ms(medD(func(r wrkRun) time.Duration { return r.kp.P50 })),
			ms(medD(func(r wrkRun) time.Duration { return r.kp.P99 })), med(func(r wrkRun) float64 { return r.kpCPU }),
			med(func(r wrkRun) float64 { return r.ceil.RPS }), ms(medD(func(r wrkRun) time.Duration { return r.ceil.P50 })),
			ms(medD(func(r wrkRun) time.Duration { return r.ceil.P99 })), med(func(r wrkRun) float64 { return r.ceilCPU }),
			med(func(r wrkRun) float64 { return r.kp.RPS / r.ceil.RPS }), med(func(r wrkRun) float64 { return r.reads }),
			int64(med(func(r wrkRun) float64 { return float64(r.rss) }))>>20)
	}
	if o.scenarios["rate"] {
		row, err := p.benchRate(ctx, o, storeName, seed, srv, ceil.url)
		if err != nil {
			return err
		}
		o.rateRows = append(o.rateRows, row)
	}
	return nil
}

// wrkRun is one measured run of a wrk scenario, on keyplane and on the ceiling.
type wrkRun struct {
	kp, ceil       bench.Result
	kpCPU, ceilCPU float64 // µs a request
	reads          float64
	rss            int64
}

func (p *Program) wrkRun(ctx context.Context, o *benchOptions, srv, ceil *benchServer, wrk, dir, rootKey, file string) (wrkRun, error) {
	var r wrkRun
	readsBefore, _ := srv.metric("keyplane_verify_cache_misses_total")
	takesBefore, _ := srv.metric("keyplane_credit_takes_total")
	cpu0 := cpuTime(srv.cmd.Process.Pid)
	var err error
	if r.kp, err = bench.Drive(ctx, wrk, dir, srv.url, rootKey, file, o.load); err != nil {
		return r, err
	}
	r.kpCPU = perRequest(cpuTime(srv.cmd.Process.Pid)-cpu0, r.kp.Requests)
	readsAfter, _ := srv.metric("keyplane_verify_cache_misses_total")
	r.reads, r.rss = readsAfter-readsBefore, srv.rss()
	if takesAfter, _ := srv.metric("keyplane_credit_takes_total"); takesAfter > takesBefore {
		// The metered mixes' writes: a take is a transaction of the store.
		fmt.Fprintf(p.Stderr, "bench: %s: %.0f takes of credits (%.1f %% of the requests)\n", filepath.Base(file), takesAfter-takesBefore, 100*(takesAfter-takesBefore)/float64(max(r.kp.Requests, 1)))
	}
	srv.reportMemory(p.Stderr, file)
	cpu0 = cpuTime(ceil.cmd.Process.Pid)
	if r.ceil, err = bench.Drive(ctx, wrk, dir, ceil.url, rootKey, file, o.load); err != nil {
		return r, err
	}
	r.ceilCPU = perRequest(cpuTime(ceil.cmd.Process.Pid)-cpu0, r.ceil.Requests)
	if r.kp.Errors > 0 || r.ceil.Errors > 0 {
		return r, fmt.Errorf("%d errors from keyplane (see %s), %d from the ceiling (see %s)", r.kp.Errors, srv.logPath, r.ceil.Errors, ceil.logPath)
	}
	return r, nil
}

// cpuTime is the user and system CPU time a process has used so far, from /proc (0 where there is
// none), in clock ticks of 10 ms: Linux's USER_HZ is 100 on every architecture Go supports.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count the fields after its closing one.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// perRequest is cpu shared out over n requests, in microseconds.
func perRequest(cpu time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(n)
}

// ms writes a latency in milliseconds with two decimals.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// benchSeed creates a verify root key, an admin root key (for the API's management calls and the
// request log's reads) and the workspaces, and imports n keys through the store. It returns the
// deployment's key prefix with them, for the made-up keys of the scenarios.
func (p *Program) benchSeed(ctx context.Context, env map[string]string, n int, metered bool) (*benchSeeded, error) {
	child := &Program{Stdin: strings.NewReader(""), Stdout: p.Stdout, Stderr: p.Stderr, Getenv: func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return p.Getenv(k)
	}}
	cfg, err := child.parse("bench", false, nil, nil)
	if err != nil {
		return nil, err
	}
	e, err := child.open(ctx, cfg, openOptions{})
	if err != nil {
		return nil, err
	}
	defer e.store.Close()
	sys := keyplane.System("bench")
	s := &benchSeeded{prefix: cfg.KeyPrefix}
	if _, s.verifyRoot, err = e.svc.CreateRootKey(ctx, sys, "bench", []string{keyplane.ScopeVerify}); err != nil {
		return nil, err
	}
	if _, s.adminRoot, err = e.svc.CreateRootKey(ctx, sys, "bench admin", []string{keyplane.ScopeAdmin}); err != nil {
		return nil, err
	}
	for i := range (n + keysPerWorkspace - 1) / keysPerWorkspace {
		w, err := e.svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: fmt.Sprintf("Bench %d", i+1), Slug: fmt.Sprintf("bench-%d", i+1),
			MaxKeys: keyplane.Optional[int]{Set: true, Value: keyplane.MaxMaxKeys}})
		if err != nil {
			return nil, err
		}
		s.workspaces = append(s.workspaces, w.ID)
	}
	start := time.Now()
	if s.values, err = bench.Seed(ctx, e.store, cfg.KeyPrefix, s.workspaces, n); err != nil {
		return nil, err
	}
	if metered {
		// A population of their own, as many as the others: the metered Zipf mix then draws over as
		// many keys, each with its own balance, as the plain one.
		if s.metered, err = bench.SeedMetered(ctx, e.store, cfg.KeyPrefix, s.workspaces, n); err != nil {
			return nil, err
		}
	}
	s.took = time.Since(start)
	return s, nil
}

// benchServer is keyplane serve running as a child process.
type benchServer struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	done    chan error
}

// profileFile is where the server of store writes its CPU profile, or "" for none.
func (o *benchOptions) profileFile(store string) string {
	if o.cpuProfile == "" || len(o.stores) == 1 {
		return o.cpuProfile
	}
	ext := filepath.Ext(o.cpuProfile)
	return strings.TrimSuffix(o.cpuProfile, ext) + "." + store + ext
}

func startServe(ctx context.Context, exe, dir string, env map[string]string, cacheSize, cpuProfile string) (*benchServer, error) {
	args := []string{"serve"}
	if cacheSize != "" {
		args = append(args, "--cache-size", cacheSize)
	}
	if cpuProfile != "" {
		p, err := filepath.Abs(cpuProfile)
		if err != nil {
			return nil, err
		}
		args = append(args, "--cpuprofile", p)
	}
	pw := make([]byte, 16)
	rand.Read(pw)
	env = maps.Clone(env)
	env["KEYPLANE_ADMIN_PASSWORD"] = hex.EncodeToString(pw)
	return startChild(ctx, exe, dir, "serve.log", args, env)
}

// startChild runs exe with args and --addr on a free loopback port, and env added to the bench's
// own, its output to logName in dir, and waits until it answers GET /readyz.
func startChild(ctx context.Context, exe, dir, logName string, args []string, env map[string]string) (*benchServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, exe, append(args, "--addr", addr)...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logPath, name := filepath.Join(dir, logName), strings.TrimSuffix(logName, ".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	s := &benchServer{cmd: cmd, url: "http://" + addr, logPath: logPath, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait(); logf.Close() }()
	if err := waitReady(s.url, s.done, time.Minute); err != nil {
		if errors.Is(err, errNotReady) {
			s.stop()
		}
		return nil, fmt.Errorf("bench: %s %w; see %s", name, err, logPath)
	}
	return s, nil
}

// errNotReady is waitReady's error when the time it was given ran out.
var errNotReady = errors.New("not ready in time")

// waitReady polls baseURL's GET /readyz until it answers 200; it fails when exited (the process's
// end) says the process ended first, or with errNotReady after within.
func waitReady(baseURL string, exited <-chan error, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(baseURL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited (%v)", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s", errNotReady, within)
		}
	}
}

func (s *benchServer) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// metric reads one counter of /metrics.
func (s *benchServer) metric(name string) (float64, error) {
	m, err := s.metrics(name)
	if err != nil {
		return 0, err
	}
	v, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("bench: no metric %s", name)
	}
	return v, nil
}

// metrics reads the named series of one scrape of /metrics; those it does not find are missing.
func (s *benchServer) metrics(names ...string) (map[string]float64, error) {
	res, err := http.Get(s.url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	m := make(map[string]float64, len(names))
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && slices.Contains(names, f[0]) {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m, sc.Err()
}

// reportMemory says where the server's resident memory is, after a scenario: Go's heap (live at the
// last collection, and held), all Go's memory, and the cache's estimate of itself; the rest of the
// RSS is SQLite's page caches and the binary.
func (s *benchServer) reportMemory(w io.Writer, scenario string) {
	// One scrape, so that the figures are of one moment.
	m, _ := s.metrics("go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_sys_bytes", "keyplane_verify_cache_bytes")
	mib := func(name string) float64 { return m[name] / (1 << 20) }
	fmt.Fprintf(w, "bench: %s: RSS %.0f MiB; Go heap live %.0f MiB, held %.0f MiB, all Go %.0f MiB; cache estimate %.0f MiB\n",
		filepath.Base(scenario), float64(s.rss())/(1<<20), mib("go_memstats_heap_alloc_bytes"), mib("go_memstats_heap_inuse_bytes"),
		mib("go_memstats_sys_bytes"), mib("keyplane_verify_cache_bytes"))
}

// rss is the server's resident memory in bytes, from /proc; 0 where there is none.
func (s *benchServer) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// verifyOnce asks the server about one key, to check a scenario's premise before its load.
func verifyOnce(ctx context.Context, url, rootKey, key string) (keyplane.VerifyCode, error) {
	body, _ := json.Marshal(map[string]string{"key": key})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/verify", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+rootKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var a struct {
		Data struct {
			Code keyplane.VerifyCode `json:"code"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		return "", fmt.Errorf("status %d: %w", res.StatusCode, err)
	}
	return a.Data.Code, nil
}

// setFlags are the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
