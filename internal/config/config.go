// Package config reads keyplane's configuration once, from flags with environment twins, and the
// optional catalog file. Flags win over the environment, the environment over defaults.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
)

// Config is every setting of a keyplane process.
type Config struct {
	Addr        string
	DataDir     string
	DatabaseURL string
	RedisURL    string
	MasterKey   string // base64; secret, never logged
	// MasterKeyPrevious is the key a rotation replaced (base64), which still opens values sealed with
	// it until they are re-sealed; empty: the data dir's previous key file, if any.
	MasterKeyPrevious    string
	KeyPrefix            string
	AdminEmail           string
	AdminPassword        string // secret, never logged
	WebhookAllowPrivate  bool
	WebhookAllowHTTP     bool
	WebhookRetrySchedule []time.Duration
	TrustedProxies       []netip.Prefix
	MetricsToken         string // secret, never logged
	ConfigFile           string
	LogLevel             string
	LogFormat            string
	CacheTTL             time.Duration
	CacheStaleIfError    time.Duration
	// CacheMemory bounds the verification cache, in bytes (--cache-memory, in MiB).
	CacheMemory int64
	// MemoryLimit is the soft limit, in bytes, serve gives Go's collector (--memory-limit, in MiB):
	// by default the cache's bound plus MemoryOverhead, so that the collector's headroom does not
	// double a full cache's footprint. 0: none (Go's default, or the GOMEMLIMIT environment variable,
	// which wins when the flag is not given).
	MemoryLimit int64
	// LogRetention is how long request log entries are kept; UsageRetention, their hourly rollups.
	LogRetention   time.Duration
	UsageRetention time.Duration
	// EventRetention is how long event payloads are kept for resending and recovery.
	EventRetention time.Duration
	// LogFlushInterval and LogBufferSize tune the request log's writer: the longest an entry waits to
	// be written, and how many may wait before new ones are dropped.
	LogFlushInterval time.Duration
	LogBufferSize    int
	// UsageFlushInterval is how often each node adds the usage counts and last-used times of the
	// entries it wrote: the most the usage rollups lag the request log.
	UsageFlushInterval time.Duration
	// WebhookLease is how long a node holds the webhook attempts it takes; after a crash, another
	// node (or this one, restarted) makes them once it lapses.
	WebhookLease time.Duration
	// ManagementRateLimit and ManagementIPRateLimit bound management calls per credential and per
	// client address: Limit calls per Window.
	ManagementRateLimit, ManagementIPRateLimit RateLimit
	// CPUProfile is a file serve writes a CPU profile of its whole run to, when it stops cleanly:
	// for measuring (keyplane bench --cpuprofile), never served over HTTP. Empty: none.
	CPUProfile string
	// GitHubScanningKeys is the file of GitHub's secret scanning public keys, in GitHub's JSON shape;
	// empty: POST /v1/secret-scanning/github answers 404.
	GitHubScanningKeys string
	// PublicURL is where browsers reach this deployment (--public-url), without a trailing slash:
	// portal links are made under it. Empty: serve derives one from the address it listens on, and
	// warns that such links work on that machine only.
	PublicURL string
	// PortalFrameAncestors are the origins that may frame the portal (--portal-frame-ancestors),
	// each scheme://host[:port] in lower case; none: the portal may not be framed.
	PortalFrameAncestors []string
	// PortalSessionTTL is how long a portal session lasts once its link is opened.
	PortalSessionTTL time.Duration
}

// RateLimit is "Limit calls per Window".
type RateLimit struct {
	Limit  int64
	Window time.Duration
}

// Defaults of the contract.
const (
	DefaultAddr           = "127.0.0.1:8080"
	DefaultDataDir        = "./keyplane-data"
	DefaultKeyPrefix      = "kp"
	DefaultRetrySchedule  = "0s,5s,5m,30m,2h,5h,10h,10h"
	DefaultTrustedProxies = ""      // no peer: a local client must not pick its address
	DefaultLogRetention   = "720h"  // 30 days
	DefaultUsageRetention = "9600h" // 400 days
	DefaultEventRetention = "720h"  // 30 days
	DefaultLogFlush       = "200ms"
	DefaultUsageFlush     = "5s"
	DefaultLogBufferSize  = "50000"
	// DefaultCacheMemory is the verification cache's bound, in bytes (see verify.DefaultCacheMemory).
	DefaultCacheMemory = 72 << 20
	// MemoryOverhead is what a node holds besides its cache (request log buffers, usage counts, the
	// membership filter, connections) plus the collector's headroom: the default memory limit is
	// the cache's bound plus this. MinMemoryOverhead is the least --memory-limit may leave.
	MemoryOverhead       = 128 << 20
	MinMemoryOverhead    = 64 << 20
	DefaultWebhookLease  = "2m"
	DefaultMgmtRateLimit = "1000/10s"
	DefaultMgmtIPLimit   = "2000/10s"
	DefaultPortalTTL     = "1h"
)

// FlagSet declares the flags shared by every command (where the data is) and, with serve, those of
// the server. Each flag's default is its environment twin when set. Call Finish after Parse.
type FlagSet struct {
	*flag.FlagSet
	cfg                                               Config
	retry, proxies, cacheTTL, cacheSize, staleIfError string
	cacheMemory, memoryLimit                          string
	allowPrivate, allowHTTP                           string
	logRetention, usageRetention                      string
	eventRetention                                    string
	logFlush, logBuffer, usageFlush                   string
	lease                                             string
	mgmtLimit, mgmtIPLimit                            string
	frameAncestors, portalTTL                         string
	getenv                                            func(string) string
}

// NewFlagSet returns the flag set of a command; serve adds the server's flags.
func NewFlagSet(name string, serve bool, getenv func(string) string, out io.Writer) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), getenv: getenv}
	fs.SetOutput(out)
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := &fs.cfg
	fs.StringVar(&c.DataDir, "data-dir", env("KEYPLANE_DATA_DIR", DefaultDataDir), "directory of the SQLite database and the master key file (env KEYPLANE_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", env("KEYPLANE_DATABASE_URL", ""), "postgres://… to use PostgreSQL; empty: embedded SQLite (env KEYPLANE_DATABASE_URL)")
	fs.StringVar(&c.KeyPrefix, "key-prefix", env("KEYPLANE_KEY_PREFIX", DefaultKeyPrefix), "prefix of key values (env KEYPLANE_KEY_PREFIX)")
	fs.StringVar(&c.ConfigFile, "config", env("KEYPLANE_CONFIG", ""), "JSON file with the permission catalog and custom event types (env KEYPLANE_CONFIG)")
	c.MasterKey = getenv("KEYPLANE_MASTER_KEY")
	c.MasterKeyPrevious = getenv("KEYPLANE_MASTER_KEY_PREVIOUS")
	c.AdminEmail = env("KEYPLANE_ADMIN_EMAIL", "admin@localhost")
	c.AdminPassword = getenv("KEYPLANE_ADMIN_PASSWORD")
	c.LogLevel = env("KEYPLANE_LOG_LEVEL", "info")
	c.LogFormat = env("KEYPLANE_LOG_FORMAT", "text")
	fs.cacheTTL = env("KEYPLANE_CACHE_TTL", "60s")
	fs.staleIfError = env("KEYPLANE_CACHE_STALE_IF_ERROR", "0s")
	fs.cacheSize = env("KEYPLANE_CACHE_SIZE", "")
	fs.cacheMemory = env("KEYPLANE_CACHE_MEMORY", "")
	fs.memoryLimit = env("KEYPLANE_MEMORY_LIMIT", "")
	fs.retry = env("KEYPLANE_WEBHOOK_RETRY_SCHEDULE", DefaultRetrySchedule)
	fs.proxies = env("KEYPLANE_TRUSTED_PROXIES", DefaultTrustedProxies)
	fs.allowPrivate = env("KEYPLANE_WEBHOOK_ALLOW_PRIVATE", "false")
	fs.allowHTTP = env("KEYPLANE_WEBHOOK_ALLOW_HTTP", "false")
	fs.logRetention = env("KEYPLANE_LOG_RETENTION", DefaultLogRetention)
	fs.usageRetention = env("KEYPLANE_USAGE_RETENTION", DefaultUsageRetention)
	fs.eventRetention = env("KEYPLANE_EVENT_RETENTION", DefaultEventRetention)
	fs.logFlush = env("KEYPLANE_LOG_FLUSH_INTERVAL", DefaultLogFlush)
	fs.lease = env("KEYPLANE_WEBHOOK_LEASE", DefaultWebhookLease)
	fs.mgmtLimit = env("KEYPLANE_MANAGEMENT_RATE_LIMIT", DefaultMgmtRateLimit)
	fs.mgmtIPLimit = env("KEYPLANE_MANAGEMENT_IP_RATE_LIMIT", DefaultMgmtIPLimit)
	fs.logBuffer = env("KEYPLANE_LOG_BUFFER_SIZE", DefaultLogBufferSize)
	fs.usageFlush = env("KEYPLANE_USAGE_FLUSH_INTERVAL", DefaultUsageFlush)
	if serve {
		fs.StringVar(&c.Addr, "addr", env("KEYPLANE_ADDR", DefaultAddr), "address to listen on (env KEYPLANE_ADDR)")
		fs.StringVar(&c.RedisURL, "redis-url", env("KEYPLANE_REDIS_URL", ""), "redis://… for rate limits exact across nodes (env KEYPLANE_REDIS_URL)")
		fs.StringVar(&fs.allowPrivate, "webhook-allow-private", fs.allowPrivate, "allow webhook URLs on private addresses; implies --webhook-allow-http (env KEYPLANE_WEBHOOK_ALLOW_PRIVATE)")
		fs.StringVar(&fs.allowHTTP, "webhook-allow-http", fs.allowHTTP, "allow http:// webhook URLs (env KEYPLANE_WEBHOOK_ALLOW_HTTP)")
		fs.StringVar(&fs.retry, "webhook-retry-schedule", fs.retry, "waits before each webhook retry (env KEYPLANE_WEBHOOK_RETRY_SCHEDULE)")
		fs.StringVar(&fs.proxies, "trusted-proxies", fs.proxies, "CIDRs whose X-Forwarded-For / X-Real-IP are believed (env KEYPLANE_TRUSTED_PROXIES)")
		fs.StringVar(&c.MetricsToken, "metrics-token", env("KEYPLANE_METRICS_TOKEN", ""), "bearer token required by /metrics; empty: open (env KEYPLANE_METRICS_TOKEN)")
		fs.StringVar(&fs.cacheTTL, "cache-ttl", fs.cacheTTL, "longest time a cached key is trusted without a read (env KEYPLANE_CACHE_TTL)")
		fs.StringVar(&fs.staleIfError, "cache-stale-if-error", fs.staleIfError, "how long past its TTL a cached key still verifies while the database cannot be read; 0s: not at all (env KEYPLANE_CACHE_STALE_IF_ERROR)")
		fs.StringVar(&fs.cacheMemory, "cache-memory", fs.cacheMemory, "MiB of memory the verification cache holds, about 0.5 KiB a key; default 72 (env KEYPLANE_CACHE_MEMORY)")
		fs.StringVar(&fs.memoryLimit, "memory-limit", fs.memoryLimit, "MiB of memory the Go collector aims to stay under; 0: no limit; default --cache-memory + 128, unless GOMEMLIMIT is set (env KEYPLANE_MEMORY_LIMIT)")
		fs.StringVar(&fs.cacheSize, "cache-size", fs.cacheSize, "deprecated: use --cache-memory; N keys means N KiB (env KEYPLANE_CACHE_SIZE)")
		fs.StringVar(&fs.logRetention, "log-retention", fs.logRetention, "how long request log entries are kept, e.g. 720h (env KEYPLANE_LOG_RETENTION)")
		fs.StringVar(&fs.usageRetention, "usage-retention", fs.usageRetention, "how long hourly usage counts are kept, e.g. 9600h (env KEYPLANE_USAGE_RETENTION)")
		fs.StringVar(&fs.eventRetention, "event-retention", fs.eventRetention, "how long event payloads are kept for resending and recovery, e.g. 720h (env KEYPLANE_EVENT_RETENTION)")
		fs.StringVar(&fs.mgmtLimit, "management-rate-limit", fs.mgmtLimit, "management calls allowed per credential, as N/duration (env KEYPLANE_MANAGEMENT_RATE_LIMIT)")
		fs.StringVar(&fs.mgmtIPLimit, "management-ip-rate-limit", fs.mgmtIPLimit, "management calls allowed per client address, as N/duration (env KEYPLANE_MANAGEMENT_IP_RATE_LIMIT)")
		fs.StringVar(&fs.lease, "webhook-lease", fs.lease, "how long a node holds the webhook attempts it takes; after a crash they are made again once it lapses (env KEYPLANE_WEBHOOK_LEASE)")
		fs.StringVar(&fs.logFlush, "log-flush-interval", fs.logFlush, "longest wait of a request log entry before it is written (env KEYPLANE_LOG_FLUSH_INTERVAL)")
		fs.StringVar(&c.CPUProfile, "cpuprofile", env("KEYPLANE_CPUPROFILE", ""), "file to write a CPU profile of the whole run to, on a clean stop, and its heap profile to FILE.heap; for measuring (env KEYPLANE_CPUPROFILE)")
		fs.StringVar(&fs.logBuffer, "log-buffer-size", fs.logBuffer, "request log entries held for writing; more are dropped and counted (env KEYPLANE_LOG_BUFFER_SIZE)")
		fs.StringVar(&fs.usageFlush, "usage-flush-interval", fs.usageFlush, "how often usage counts and last-used times are written: the most usage lags the request log (env KEYPLANE_USAGE_FLUSH_INTERVAL)")
		fs.StringVar(&c.PublicURL, "public-url", env("KEYPLANE_PUBLIC_URL", ""), "base URL browsers reach this deployment at, such as https://keys.example.com: portal links are made under it; empty: http://<listen address>, which works on this machine only (env KEYPLANE_PUBLIC_URL)")
		fs.StringVar(&fs.frameAncestors, "portal-frame-ancestors", env("KEYPLANE_PORTAL_FRAME_ANCESTORS", ""), "comma-separated origins that may frame the portal, each https://host[:port] (http:// for localhost only); empty: none (env KEYPLANE_PORTAL_FRAME_ANCESTORS)")
		fs.StringVar(&fs.portalTTL, "portal-session-ttl", env("KEYPLANE_PORTAL_SESSION_TTL", DefaultPortalTTL), "how long a portal session lasts once its link is opened, from 1m to 24h (env KEYPLANE_PORTAL_SESSION_TTL)")
		fs.StringVar(&c.GitHubScanningKeys, "github-scanning-keys", env("KEYPLANE_GITHUB_SCANNING_KEYS", ""), "file of GitHub's secret scanning public keys (GitHub's JSON); empty: POST /v1/secret-scanning/github answers 404 (env KEYPLANE_GITHUB_SCANNING_KEYS)")
	}
	return fs
}

// Finish validates what Parse read and returns the configuration.
func (fs *FlagSet) Finish() (*Config, error) {
	c := fs.cfg
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !keyformat.ValidPrefix(c.KeyPrefix) {
		bad("--key-prefix %q: use 1–16 lower-case letters and digits, starting with a letter", c.KeyPrefix)
	}
	var err error
	if c.WebhookAllowPrivate, err = strconv.ParseBool(fs.allowPrivate); err != nil {
		bad("--webhook-allow-private: want true or false")
	}
	if c.WebhookAllowHTTP, err = strconv.ParseBool(fs.allowHTTP); err != nil {
		bad("--webhook-allow-http: want true or false")
	}
	c.WebhookAllowHTTP = c.WebhookAllowHTTP || c.WebhookAllowPrivate
	if c.WebhookRetrySchedule, err = ParseSchedule(fs.retry); err != nil {
		bad("--webhook-retry-schedule: %v", err)
	}
	if c.TrustedProxies, err = ParsePrefixes(fs.proxies); err != nil {
		bad("--trusted-proxies: %v", err)
	}
	if c.CacheTTL, err = time.ParseDuration(fs.cacheTTL); err != nil || c.CacheTTL < time.Second || c.CacheTTL > time.Hour {
		bad("--cache-ttl: want a duration from 1s to 1h")
	}
	if c.CacheStaleIfError, err = time.ParseDuration(fs.staleIfError); err != nil || c.CacheStaleIfError < 0 || c.CacheStaleIfError > 24*time.Hour {
		bad("--cache-stale-if-error: want a duration from 0s to 24h")
	}
	// The cache is bounded by bytes since entries weigh from about 120 bytes (an unknown digest) to
	// kilobytes (a key with long lists); --cache-size, its count bound before, still works, at the
	// 1 KiB a typical key weighs, unless --cache-memory is given too.
	switch {
	case fs.cacheMemory != "":
		mib, err := strconv.Atoi(fs.cacheMemory)
		if err != nil || mib < 1 || mib > 1<<20 {
			bad("--cache-memory: want a whole number of MiB from 1 to 1048576")
		}
		c.CacheMemory = int64(mib) << 20
	case fs.cacheSize != "":
		n, err := strconv.Atoi(fs.cacheSize)
		if err != nil || n < 100 || n > 1<<30 {
			bad("--cache-size: want a whole number of at least 100")
		}
		c.CacheMemory = int64(n) << 10
	default:
		c.CacheMemory = DefaultCacheMemory
	}
	switch {
	case fs.memoryLimit != "":
		mib, err := strconv.Atoi(fs.memoryLimit)
		if err != nil || mib < 0 || mib > 1<<24 {
			bad("--memory-limit: want a whole number of MiB, 0 for none")
		} else if mib > 0 && int64(mib)<<20 < c.CacheMemory+MinMemoryOverhead {
			bad("--memory-limit: want at least --cache-memory + %d MiB, or 0 for none", MinMemoryOverhead>>20)
		}
		c.MemoryLimit = int64(mib) << 20
	case fs.getenv("GOMEMLIMIT") != "":
		c.MemoryLimit = 0 // Go's own setting, already in force
	default:
		c.MemoryLimit = c.CacheMemory + MemoryOverhead
	}
	if c.LogRetention, err = time.ParseDuration(fs.logRetention); err != nil || c.LogRetention < time.Hour {
		bad("--log-retention: want a duration of at least 1h, such as 720h")
	}
	if c.UsageRetention, err = time.ParseDuration(fs.usageRetention); err != nil || c.UsageRetention < time.Hour {
		bad("--usage-retention: want a duration of at least 1h, such as 9600h")
	}
	if c.EventRetention, err = time.ParseDuration(fs.eventRetention); err != nil || c.EventRetention < time.Hour {
		bad("--event-retention: want a duration of at least 1h, such as 720h")
	}
	if c.LogFlushInterval, err = time.ParseDuration(fs.logFlush); err != nil || c.LogFlushInterval < time.Millisecond || c.LogFlushInterval > time.Minute {
		bad("--log-flush-interval: want a duration from 1ms to 1m")
	}
	if c.UsageFlushInterval, err = time.ParseDuration(fs.usageFlush); err != nil || c.UsageFlushInterval < 10*time.Millisecond || c.UsageFlushInterval > time.Minute {
		bad("--usage-flush-interval: want a duration from 10ms to 1m, such as 5s")
	}
	if c.ManagementRateLimit, err = ParseRateLimit(fs.mgmtLimit); err != nil {
		bad("--management-rate-limit: %v", err)
	}
	if c.ManagementIPRateLimit, err = ParseRateLimit(fs.mgmtIPLimit); err != nil {
		bad("--management-ip-rate-limit: %v", err)
	}
	if c.WebhookLease, err = time.ParseDuration(fs.lease); err != nil || c.WebhookLease < 20*time.Second || c.WebhookLease > time.Hour {
		bad("--webhook-lease: want a duration from 20s to 1h")
	}
	if c.LogBufferSize, err = strconv.Atoi(fs.logBuffer); err != nil || c.LogBufferSize < 100 || c.LogBufferSize > 10_000_000 {
		bad("--log-buffer-size: want a whole number from 100 to 10000000")
	}
	if c.PublicURL != "" {
		if c.PublicURL, err = ParsePublicURL(c.PublicURL); err != nil {
			bad("--public-url: %v", err)
		}
	}
	if c.PortalFrameAncestors, err = ParseOrigins(fs.frameAncestors); err != nil {
		bad("--portal-frame-ancestors: %v", err)
	}
	// portalTTL is empty for commands other than serve, which make no portal sessions.
	if fs.portalTTL != "" {
		if c.PortalSessionTTL, err = time.ParseDuration(fs.portalTTL); err != nil || c.PortalSessionTTL < time.Minute || c.PortalSessionTTL > 24*time.Hour {
			bad("--portal-session-ttl: want a duration from 1m to 24h, such as 1h")
		}
	}
	if u := c.DatabaseURL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		bad("--database-url: want postgres://…, or leave it empty for SQLite")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("KEYPLANE_LOG_LEVEL: want debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("KEYPLANE_LOG_FORMAT: want text or json")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseSchedule reads a comma-separated list of durations such as "0s,5s,5m".
func ParseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d < 0 || d > 7*24*time.Hour {
			return nil, fmt.Errorf("%q is not a duration from 0s to 168h", part)
		}
		out = append(out, d)
	}
	if len(out) == 0 || len(out) > 20 {
		return nil, errors.New("want 1 to 20 durations")
	}
	return out, nil
}

// ParseRateLimit reads "N/duration", such as 1000/10s: at least 1 call, in a window from 1s to 24h.
func ParseRateLimit(s string) (RateLimit, error) {
	n, d, ok := strings.Cut(strings.TrimSpace(s), "/")
	limit, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || limit < 1 || limit > 1_000_000_000 {
		return RateLimit{}, fmt.Errorf("%q: want N/duration, such as 1000/10s", s)
	}
	window, err := time.ParseDuration(d)
	if err != nil || window < time.Second || window > 24*time.Hour {
		return RateLimit{}, fmt.Errorf("%q: the window must be a duration from 1s to 24h", s)
	}
	return RateLimit{Limit: limit, Window: window}, nil
}

// ParsePublicURL checks a deployment's public URL: http or https, a host, no credentials, query or
// fragment; a path is kept (a proxy may serve keyplane under one). It answers the URL without a
// trailing slash, so that links are made by appending /portal/….
func ParsePublicURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q: want an http or https URL such as https://keys.example.com, without credentials, query or fragment", s)
	}
	return strings.TrimRight(u.Scheme+"://"+strings.ToLower(u.Host)+u.EscapedPath(), "/"), nil
}

// localHosts may be framing origins over plain http: a developer's machine.
var localHosts = map[string]bool{"localhost": true, "127.0.0.1": true, "[::1]": true}

// ParseOrigins reads a comma-separated list of origins that may frame the portal: each
// https://host[:port], or http:// for localhost, 127.0.0.1 and [::1], without a path; answered in
// lower case. They go into a CSP frame-ancestors directive, so nothing else is let through: no
// wildcard, no keyword, no character a directive could be broken with.
func ParseOrigins(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		bad := err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") ||
			u.Hostname() == "" || strings.ContainsAny(u.Host, "*;, '\"")
		if !bad {
			if p := u.Port(); p != "" {
				n, err := strconv.Atoi(p)
				bad = err != nil || n < 1 || n > 65535
			}
		}
		host := strings.ToLower(u.Host)
		hostname := strings.TrimSuffix(host, ":"+u.Port())
		switch {
		case bad:
		case u.Scheme == "https":
		case u.Scheme == "http" && localHosts[hostname]:
		default:
			bad = true
		}
		if bad {
			return nil, fmt.Errorf("%q: want origins such as https://app.example.com or https://app.example.com:8443 (http:// only for localhost), comma-separated", part)
		}
		out = append(out, u.Scheme+"://"+host)
	}
	return out, nil
}

// ParsePrefixes reads a comma-separated list of CIDRs or addresses.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR or an address", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// File is the optional configuration file: the deployment's own permissions and event types.
type File struct {
	Permissions []keyplane.CatalogEntry `json:"permissions"`
	EventTypes  []keyplane.CatalogEntry `json:"eventTypes"`
}

// Catalog builds the catalog from keyplane's own entries and the file's, if any.
func (c *Config) Catalog() (*keyplane.Catalog, error) {
	var f File
	if c.ConfigFile != "" {
		b, err := os.ReadFile(c.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("config file %s: %w", c.ConfigFile, err)
		}
	}
	cat, err := keyplane.NewCatalog(f.Permissions, f.EventTypes)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", c.ConfigFile, err)
	}
	return cat, nil
}
