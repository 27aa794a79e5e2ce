package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyplane/keyplane/internal/accesslog"
	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/credits"
	"github.com/keyplane/keyplane/internal/dashboard"
	"github.com/keyplane/keyplane/internal/delivery"
	"github.com/keyplane/keyplane/internal/masterkey"
	"github.com/keyplane/keyplane/internal/metrics"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/replay"
	"github.com/keyplane/keyplane/internal/reqlog"
	"github.com/keyplane/keyplane/internal/secretscan"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/sqlite"
	"github.com/keyplane/keyplane/internal/store/sqlstore"
	"github.com/keyplane/keyplane/internal/throttle"
	"github.com/keyplane/keyplane/internal/verify"
)

// handler routes the API's paths to the API and everything else to the dashboard, all behind request
// ids, access logs, panic recovery and HSTS.
func handler(e *env, m *metrics.Metrics, ver *verify.Verifier, limiter ratelimit.Limiter, rl *reqlog.Logger, cfg *config.Config, started time.Time) (http.Handler, error) {
	m.CounterFunc("keyplane_verify_cache_hits_total", "Key lookups answered from the verification cache.", func() float64 { h, _, _ := ver.CacheStats(); return float64(h) })
	m.CounterFunc("keyplane_verify_cache_misses_total", "Key lookups that read the store.", func() float64 { _, mi, _ := ver.CacheStats(); return float64(mi) })
	m.CounterFunc("keyplane_verify_stale_answers_total", "Key lookups answered from entries past the cache TTL because the store could not be read (--cache-stale-if-error).", func() float64 { return float64(ver.StaleServed()) })
	m.CounterFunc("keyplane_verify_filtered_total", "Key lookups answered NOT_FOUND by a membership filter, without a read: the filter of stored digests (SQLite), or of imported ones for values without keyplane's format (every driver).", func() float64 { return float64(ver.Filtered()) })
	m.GaugeFunc("keyplane_verify_cache_entries", "Key digests held by the verification cache, known and unknown.", func() float64 { _, _, n := ver.CacheStats(); return float64(n) })
	m.GaugeFunc("keyplane_verify_cache_bytes", "Estimated bytes held by the verification cache (bounded by --cache-memory).", func() float64 { return float64(ver.CacheWeight()) })
	m.GaugeFunc("keyplane_verify_feed_trusted", "1 while the change feed (LISTEN, or SQLite's change journal) is trusted and cached keys need no TTL.", func() float64 {
		if ver.FeedTrusted() {
			return 1
		}
		return 0
	})
	m.CounterFunc("keyplane_request_log_dropped_total", "Request log entries dropped because the buffer was full.", func() float64 { return float64(rl.Dropped()) })
	m.CounterFunc("keyplane_request_log_failed_total", "Request log entries lost to a failed batch write.", func() float64 { return float64(rl.Failed()) })
	m.GaugeFunc("keyplane_request_log_waiting_entries", "Request log entries logged and not yet written.", func() float64 { return float64(rl.Waiting()) })
	m.GaugeFunc("keyplane_usage_uncounted_requests", "Requests logged and not yet in the usage rollups: entries waiting to be written, and written ones whose counts wait for the next usage write (--usage-flush-interval). A kill loses at most these.", func() float64 { return float64(rl.Uncounted()) })
	m.GaugeFunc("keyplane_usage_write_age_seconds", "Seconds since the usage counts waiting were last written (or none waited); grows while the store refuses them.", func() float64 { return rl.UsageAge().Seconds() })
	m.CounterFunc("keyplane_usage_lost_total", "Requests logged whose usage counts were dropped: too many waited while the store refused them, or a shutdown gave up.", func() float64 { return float64(rl.UsageLost()) })
	var ghKeys api.GitHubKeys
	if cfg.GitHubScanningKeys != "" {
		// A file that does not parse stops serve rather than leave the endpoint refusing every batch
		// GitHub sends; later it is read again when GitHub signs with a key it does not hold yet.
		f, err := secretscan.OpenFile(cfg.GitHubScanningKeys)
		if err != nil {
			return nil, err
		}
		ghKeys = f
	}
	apiSrv := api.New(api.Options{
		Service: e.svc, Verifier: ver, Logger: e.log, TrustedProxies: cfg.TrustedProxies, Version: Version, Started: started,
		RequestLog: rl, Observe: m.Verification, Limiter: limiter,
		CredentialLimit: ratelimit.Limit(cfg.ManagementRateLimit), AddressLimit: ratelimit.Limit(cfg.ManagementIPRateLimit),
		GitHubScanningKeys: ghKeys,
	})
	dash, err := dashboard.New(dashboard.Options{Service: e.svc, Logger: e.log, Version: Version, Started: started, ClientIP: apiSrv.ClientIP, FromTrustedProxy: apiSrv.FromTrustedProxy,
		PortalFrameAncestors: cfg.PortalFrameAncestors})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/v1/", "/healthz", "/readyz"} {
		mux.Handle(p, apiSrv)
	}
	mux.Handle("/", dash)
	mux.Handle("GET /metrics", m.Handler(cfg.MetricsToken))
	// Verifications skip the generic HTTP metrics and the routing (api.Server.Lean): the
	// verification metrics count them.
	return accesslog.Wrap(e.log, apiSrv.StrictTransport(apiSrv.Lean(m.Middleware(mux))), func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			apiSrv.Panic(w, r)
		} else {
			dash.Panic(w, r)
		}
	}), nil
}

// filterCapacity and filterRate size the membership filter's first stage: 2 MiB for the first
// million digests at a false-positive rate well under 1 %; past that, it grows by stages.
const (
	filterCapacity = 1 << 20
	filterRate     = 0.01
	// importedCapacity sizes the imported filter's first stage (64 KiB); it grows with the imports.
	importedCapacity = 1 << 15
)

// shutdownGrace bounds how long serve waits for requests in flight after SIGTERM.
const shutdownGrace = 30 * time.Second

// listenWait bounds how long serve waits for its first LISTEN on PostgreSQL before it says it is
// ready: long enough for a slow database, short of keeping a node down when LISTEN alone fails.
const listenWait = 10 * time.Second

func (p *Program) serve(ctx context.Context, args []string) error {
	started := time.Now()
	cfg, err := p.parse("serve", true, args, nil)
	if err != nil {
		return helpOK(err)
	}
	var ver *verify.Verifier
	var runner *delivery.Runner
	m := metrics.New()
	log := p.logger(cfg)
	// Redis, when given, holds what every node must share: rate limits, seen signatures, and the
	// sign-in throttles' counts.
	var limiter ratelimit.Limiter = ratelimit.NewLocal(nil)
	var seen replay.Guard // nil: the verifier's own, in process
	var signIn service.SignInLimits
	if cfg.RedisURL != "" {
		ratelimit.QuietClientLogs(log)
		rl, err := ratelimit.NewRedis(ratelimit.RedisOptions{URL: cfg.RedisURL, Logger: log})
		if err != nil {
			return err
		}
		defer rl.Close()
		if err := rl.Ping(ctx); err != nil {
			// Not fatal: limits hold per node until Redis answers, and the log says so.
			log.Warn("rate limits: Redis does not answer at start; each node limits on its own until it does", "err", err)
		}
		limiter, seen = rl, replay.NewRedis(rl.Client())
		signIn = service.NewSignInLimits(func(name string, max int, window time.Duration) throttle.Counter {
			return throttle.NewRedis(rl.Client(), name, max, window, 100_000, log)
		})
	}
	// Listening comes before the service, which makes portal links under the public URL: when none is
	// given it is derived from the address actually listened on (--addr 127.0.0.1:0 included).
	// Connections wait in the backlog until the server is ready.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close() // a second Close, after Serve's, does nothing
	addr := ln.Addr().String()
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = derivedPublicURL(ln.Addr())
		log.Warn("no --public-url: portal links are made under the address listened on, which only this machine reaches; set --public-url to where browsers reach keyplane", "public_url", publicURL)
	}
	e, err := p.open(ctx, cfg, openOptions{Log: log, PublicURL: publicURL, Forget: func(h ...[]byte) { ver.Forget(h...) }, Admit: func(h ...[]byte) { ver.Admit(h...) }, SignIn: signIn,
		Webhooks: service.WebhookOptions{Kick: func() { runner.Kick() }, Delivered: m.Delivery, Lease: cfg.WebhookLease}})
	if err != nil {
		return err
	}
	runner = delivery.New(e.svc, delivery.Options{Logger: e.log})
	defer e.store.Close()
	// On SQLite, this process is the only one serving the file, and other processes' changes (the
	// CLI's) reach it through the change journal: it keeps a filter of every stored digest. The
	// journal's end is noted before the filter reads the digests, so that a key made in between is
	// in the journal's later rows.
	var journal *sqlite.Journal
	var filter *verify.Filter
	if db, ok := e.store.(*sqlstore.DB); ok && e.store.Driver() == "sqlite" {
		if journal, err = sqlite.OpenJournal(ctx, sqlitePath(cfg)); err != nil {
			return err
		}
		defer journal.Close()
		if _, err := journal.Start(ctx); err != nil {
			return err
		}
		filter = verify.NewFilter(filterCapacity, filterRate)
		if err := db.EachSecretHash(ctx, func(h []byte) { filter.Add([32]byte(h)) }); err != nil {
			return err
		}
	}
	// Imported values need not have keyplane's format, so the verifier cannot refuse a made-up value
	// by its shape: on every driver it keeps a filter of the imported digests, loaded here (after the
	// journal's start, as the filter above), topped up by the change feed (Admit), and loaded again,
	// into the same filter, after every gap in the feed (loadImported).
	imported := verify.NewFilter(importedCapacity, filterRate)
	importedSource, _ := e.store.(interface {
		EachImportedHash(ctx context.Context, fn func(hash []byte)) error
	})
	loadImported := func(ctx context.Context) {
		if importedSource == nil {
			return
		}
		if err := importedSource.EachImportedHash(ctx, ver.AdmitImported); err != nil {
			// Kept serving: imported values admitted so far and by the feed still verify; the
			// next gap loads again.
			e.log.Error("imported keys: could not load their digests", "err", err)
		}
	}
	// Credits are spent from blocks this node takes from the balances (docs/scaling.md, "Credits"),
	// through the service, which applies due refills and notes exhaustions around each take;
	// a clean shutdown gives back what it holds, after the requests in flight have finished. The
	// deferred Close covers early returns, and runs before the store's.
	bank := credits.NewBank(e.svc, credits.Options{Logger: e.log})
	closeBank := sync.OnceValue(func() error {
		cctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		return bank.Close(cctx)
	})
	defer closeBank()
	m.CounterFunc("keyplane_credit_takes_total", "Takes of credits from the store: a block for this node's spends from a balance (docs/scaling.md, \"Credits\").", func() float64 { t, _, _ := bank.Stats(); return float64(t) })
	m.CounterFunc("keyplane_credit_returns_total", "Blocks of credits given back to the store: idle, or at shutdown.", func() float64 { _, r, _ := bank.Stats(); return float64(r) })
	m.GaugeFunc("keyplane_credit_balances_held", "Balances this node holds a block of, or spent from lately.", func() float64 { _, _, n := bank.Stats(); return float64(n) })
	ver, err = verify.New(e.store, verify.Options{KeyPrefix: cfg.KeyPrefix, CacheMemory: cfg.CacheMemory, TTL: cfg.CacheTTL,
		StaleIfError: cfg.CacheStaleIfError, Limiter: limiter, Box: e.box, Replay: seen, Filter: filter, Imported: imported, Bank: bank})
	if err != nil {
		return err
	}
	if importedSource != nil {
		if err := importedSource.EachImportedHash(ctx, ver.AdmitImported); err != nil {
			return err
		}
	}
	if journal != nil {
		// The watcher stops before the journal closes (defers run last first), however serve ends.
		wctx, stop := context.WithCancel(ctx)
		watched := make(chan struct{})
		defer func() { stop(); <-watched }()
		go func() {
			defer close(watched)
			journal.Watch(wctx, sqlite.WatchOptions{Log: e.log,
				// Admitted before forgotten: once a digest's cached "unknown" is gone, the filter
				// must let its next lookup through to the store.
				Apply: func(h ...[]byte) { ver.Admit(h...); ver.Forget(h...) },
				Up:    ver.FeedUp, Down: ver.FeedDown,
				Gap: func() { ver.DropFilter(); loadImported(wctx); ver.Purge() }})
		}()
	}
	boot, err := e.svc.Bootstrap(ctx, cfg.AdminEmail, cfg.AdminPassword)
	if err != nil {
		return err
	}
	// The request log outlives the HTTP server: it is closed after Shutdown has finished the requests
	// in flight, so that their entries are written too. The deferred Close covers early returns; it
	// runs before the store's, which was deferred first.
	rl := reqlog.New(e.store, reqlog.Options{BufferSize: cfg.LogBufferSize, FlushInterval: cfg.LogFlushInterval,
		UsageInterval: cfg.UsageFlushInterval, Logger: e.log})
	closeLog := func() error {
		cctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		return rl.Close(cctx)
	}
	defer closeLog()
	handler, err := handler(e, m, ver, limiter, rl, cfg, started)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	if cfg.MemoryLimit > 0 {
		// A process-wide setting, like GOMEMLIMIT, which it stands for: serve is the process.
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if pg, ok := e.store.(*postgres.DB); ok {
		// Other nodes' key changes reach this node's cache within a moment; the cache TTL is the
		// safety net while the connection is down. The node says it is ready only once it listens:
		// a key it read before, revoked by another node before it listened, would stay valid for the
		// cache TTL.
		listening, once := make(chan struct{}), sync.Once{}
		// Trusted only once listening, and then with nothing in the cache read before: when LISTEN
		// came up late (after listenWait), entries read meanwhile may have missed a change.
		// Imports committed while it did not listen are loaded first: their notices are lost.
		trust := func() { loadImported(ctx); ver.Purge(); ver.FeedUp(); once.Do(func() { close(listening) }) }
		// Admitted before forgotten, as the journal's: other nodes' imports reach the imported filter.
		apply := func(h ...[]byte) { ver.Admit(h...); ver.Forget(h...) }
		go pg.Listen(ctx, e.log, apply, ver.Purge, trust, ver.FeedDown)
		select {
		case <-listening:
		case <-ctx.Done():
		case <-time.After(listenWait):
			e.log.Warn("cache invalidation: not listening yet; starting anyway, changes made on other nodes are seen after the cache TTL until it is", "waited", listenWait)
		}
	}
	e.log.Info("keyplane started", "addr", addr, "store", e.store.Driver(), "version", Version, "startup", time.Since(started).Round(time.Millisecond))
	fmt.Fprintf(p.Stdout, "keyplane %s listening on http://%s (store: %s)\n", Version, addr, e.store.Driver())
	if e.createdMasterKey {
		fmt.Fprintf(p.Stdout, "A new master key was written to %s/%s: back it up; recoverable keys cannot be read without it.\n", cfg.DataDir, masterkey.FileName)
	}
	if boot != nil {
		fmt.Fprintf(p.Stdout, "First start: created the workspace %q (%s) and the operator admin %s.\n", boot.Workspace.Name, boot.Workspace.ID, boot.AdminEmail)
		if boot.GeneratedPassword != "" {
			fmt.Fprintf(p.Stdout, "Admin password (shown once, change it with `keyplane users create`): %s\n", boot.GeneratedPassword)
		}
	}
	if p.Ready != nil {
		p.Ready(addr)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go pruneLogs(ctx, e)
	// Replays never depend on the idempotency keys' pruning: a record past its 24 hours is replaced
	// by the next claim of its key.
	go pruneHourly(ctx, e, "prune sessions", "pruned expired sessions", e.svc.PruneSessions)
	go pruneHourly(ctx, e, "prune portal sessions", "pruned ended portal sessions", e.svc.PrunePortalSessions)
	go pruneHourly(ctx, e, "prune idempotency keys", "pruned expired idempotency keys", e.svc.PruneIdempotencyKeys)
	go pruneHourly(ctx, e, "prune event payloads", "dropped event payloads past the retention", e.svc.PruneEvents)
	go notifyExpiries(ctx, e)
	go refillCredits(ctx, e)
	// Webhook workers stop with ctx; attempts cut short keep their lease and are made again, by this
	// node once it restarts or by another, when the lease lapses.
	workersDone := make(chan struct{})
	go func() { runner.Run(ctx); close(workersDone) }()
	defer func() { <-workersDone }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	e.log.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := closeBank(); err != nil {
		return err
	}
	if err := closeLog(); err != nil {
		return err
	}
	if n := rl.Dropped() + rl.Failed() + rl.UsageLost(); n > 0 {
		e.log.Warn("request log entries or usage counts were lost while running", "dropped", rl.Dropped(), "failed", rl.Failed(), "usage_lost", rl.UsageLost())
	}
	e.log.Info("stopped")
	return nil
}

// startCPUProfile profiles the process's CPU into the file at path until stop is called, which also
// writes a heap profile to path.heap.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		// What the heap holds at the end, beside: where a node's memory goes (docs/performance.md).
		if h, err := os.Create(path + ".heap"); err == nil {
			pprof.Lookup("heap").WriteTo(h, 0)
			h.Close()
		}
	}, nil
}

// periodic runs job now and then every interval until ctx ends, one node at a time: of several nodes
// sharing a database, the one that holds the job's lock (store.RunExclusive) runs it and the others
// skip that turn. A job's error is logged, and the next turn runs it again.
func periodic(ctx context.Context, e *env, name string, interval time.Duration, job func(ctx context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := e.store.RunExclusive(ctx, name, job); err != nil && ctx.Err() == nil {
			e.log.Warn(name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// derivedPublicURL is the public URL of a deployment that was given none: http:// and the address
// listened on, loopback for an unspecified one (0.0.0.0, ::), which only this machine reaches.
func derivedPublicURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	ip := tcp.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}

// pruneHourly runs prune every hour (one node at a time) and logs what it removed as done.
func pruneHourly(ctx context.Context, e *env, name, done string, prune func(context.Context) (int64, error)) {
	periodic(ctx, e, name, time.Hour, func(ctx context.Context) error {
		n, err := prune(ctx)
		if n > 0 {
			e.log.Info(done, "count", n)
		}
		return err
	})
}

// pruneLogs deletes request log entries and usage rollups past their retention every hour.
func pruneLogs(ctx context.Context, e *env) {
	periodic(ctx, e, "prune request logs", time.Hour, func(ctx context.Context) error {
		logs, usage, err := e.svc.PruneLogs(ctx)
		if logs > 0 || usage > 0 {
			e.log.Info("pruned request logs", "entries", logs, "usage_rollups", usage)
		}
		return err
	})
}

// expiryInterval is how often serve looks for keys to announce as expiring or expired: notices go out
// within this of their time.
const expiryInterval = 30 * time.Second

// notifyExpiries sends api_key.expiring and api_key.expired notices. One node at a time looks for
// them; should two ever overlap, each notice still goes out once (see service.NotifyExpiries).
func notifyExpiries(ctx context.Context, e *env) {
	periodic(ctx, e, "key expiry notices", expiryInterval, func(ctx context.Context) error {
		n, err := e.svc.NotifyExpiries(ctx)
		if n > 0 {
			e.log.Info("key expiry notices sent", "notices", n)
		}
		return err
	})
}

// refillInterval is how often serve looks for credit balances whose refill is due. A balance in use
// is refilled by the verification that finds it due (service.TakeCredits); the job refills the
// others, so that what the API shows is current within this.
const refillInterval = time.Minute

// refillCredits applies due refills of credit balances, on one node at a time.
func refillCredits(ctx context.Context, e *env) {
	periodic(ctx, e, "credit refills", refillInterval, func(ctx context.Context) error {
		n, err := e.svc.RefillDue(ctx)
		if n > 0 {
			e.log.Info("credit balances refilled", "balances", n)
		}
		return err
	})
}
