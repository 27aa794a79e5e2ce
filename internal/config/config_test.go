package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	fs := NewFlagSet("serve", true, func(k string) string { return env[k] }, io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Finish()
}

func TestDefaultsEnvAndFlags(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != DefaultAddr || c.DataDir != DefaultDataDir || c.KeyPrefix != "kp" || c.DatabaseURL != "" || c.WebhookAllowHTTP || len(c.WebhookRetrySchedule) != 8 || c.WebhookRetrySchedule[2] != 5*time.Minute {
		t.Fatalf("defaults: %+v", c)
	}
	// No proxy is trusted unless named: trusting loopback would let any local client pick its
	// address with X-Forwarded-For, past an ipAllowlist and the sign-in throttle.
	if len(c.TrustedProxies) != 0 {
		t.Fatalf("trusted proxies by default: %v, want none", c.TrustedProxies)
	}
	if c.LogRetention != 30*24*time.Hour || c.UsageRetention != 400*24*time.Hour || c.LogFlushInterval != 200*time.Millisecond || c.LogBufferSize != 50000 || c.UsageFlushInterval != 5*time.Second {
		t.Fatalf("request log defaults: retention %s, usage %s, flush %s, buffer %d, usage flush %s", c.LogRetention, c.UsageRetention, c.LogFlushInterval, c.LogBufferSize, c.UsageFlushInterval)
	}
	env := map[string]string{"KEYPLANE_ADDR": "0.0.0.0:9000", "KEYPLANE_KEY_PREFIX": "acme", "KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true", "KEYPLANE_MASTER_KEY": "k"}
	c, err = parse(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "0.0.0.0:9000" || c.KeyPrefix != "acme" || !c.WebhookAllowPrivate || !c.WebhookAllowHTTP || c.MasterKey != "k" {
		t.Fatalf("environment not read, or allow-private did not imply allow-http: %+v", c)
	}
	c, err = parse(t, env, "--addr", "127.0.0.1:1", "--webhook-allow-private=false")
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:1" || c.WebhookAllowPrivate {
		t.Fatalf("flags must win over the environment: %+v", c)
	}
}

func TestRequestLogSettings(t *testing.T) {
	env := map[string]string{"KEYPLANE_LOG_RETENTION": "48h", "KEYPLANE_USAGE_RETENTION": "8760h",
		"KEYPLANE_LOG_FLUSH_INTERVAL": "10ms", "KEYPLANE_LOG_BUFFER_SIZE": "500", "KEYPLANE_USAGE_FLUSH_INTERVAL": "2s"}
	c, err := parse(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogRetention != 48*time.Hour || c.UsageRetention != 365*24*time.Hour || c.LogFlushInterval != 10*time.Millisecond || c.LogBufferSize != 500 || c.UsageFlushInterval != 2*time.Second {
		t.Fatalf("environment not read: %s %s %s %d %s", c.LogRetention, c.UsageRetention, c.LogFlushInterval, c.LogBufferSize, c.UsageFlushInterval)
	}
	c, err = parse(t, env, "--log-retention", "1h", "--usage-retention", "24h", "--log-flush-interval", "2s", "--log-buffer-size", "100", "--usage-flush-interval", "500ms")
	if err != nil {
		t.Fatal(err)
	}
	if c.LogRetention != time.Hour || c.UsageRetention != 24*time.Hour || c.LogFlushInterval != 2*time.Second || c.LogBufferSize != 100 || c.UsageFlushInterval != 500*time.Millisecond {
		t.Fatalf("flags must win over the environment: %s %s %s %d %s", c.LogRetention, c.UsageRetention, c.LogFlushInterval, c.LogBufferSize, c.UsageFlushInterval)
	}
	for name, args := range map[string][]string{
		"retention in days":    {"--log-retention", "30d"},
		"retention too short":  {"--log-retention", "59m"},
		"negative usage":       {"--usage-retention", "-1h"},
		"usage not a duration": {"--usage-retention", "forever"},
		"flush of zero":        {"--log-flush-interval", "0s"},
		"flush of an hour":     {"--log-flush-interval", "1h"},
		"buffer too small":     {"--log-buffer-size", "10"},
		"buffer not a number":  {"--log-buffer-size", "lots"},
		"usage flush of zero":  {"--usage-flush-interval", "0s"},
		"usage flush too long": {"--usage-flush-interval", "2m"},
		"usage flush in days":  {"--usage-flush-interval", "1d"},
	} {
		if _, err := parse(t, nil, args...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The error names the flag and what it takes, from the environment too.
	_, err = parse(t, map[string]string{"KEYPLANE_USAGE_FLUSH_INTERVAL": "soon"})
	if err == nil || !strings.Contains(err.Error(), "--usage-flush-interval: want a duration from 10ms to 1m") {
		t.Errorf("a bad KEYPLANE_USAGE_FLUSH_INTERVAL: %v", err)
	}
}

func TestBadValues(t *testing.T) {
	for name, args := range map[string][]string{
		"prefix with capitals": {"--key-prefix", "KP"},
		"prefix too long":      {"--key-prefix", strings.Repeat("a", 17)},
		"mysql url":            {"--database-url", "mysql://x"},
		"bad schedule":         {"--webhook-retry-schedule", "0s,soon"},
		"negative schedule":    {"--webhook-retry-schedule", "-5s"},
		"bad proxy":            {"--trusted-proxies", "10.0.0.0/99"},
		"cache ttl too short":  {"--cache-ttl", "1ms"},
		"bool not bool":        {"--webhook-allow-http", "perhaps"},
	} {
		if _, err := parse(t, nil, args...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parse(t, map[string]string{"KEYPLANE_LOG_LEVEL": "loud"}); err == nil {
		t.Error("a bad log level was accepted")
	}
}

func TestCatalogFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := &Config{ConfigFile: "../../examples/keyplane.json"}
	cat, err := c.Catalog()
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	for _, p := range []string{"orders:read", "orders:write", "otp:send", "otp:verify", "api_keys:read"} {
		if !cat.HasPermission(p) {
			t.Errorf("example catalog lacks %s", p)
		}
	}
	if !cat.HasEventType("order.created") {
		t.Error("example event type missing")
	}
	for _, bad := range []string{`{`, `{"permissions":[{"name":"Bad Name"}]}`, `{"permisions":[]}`, `{"eventTypes":[{"name":"api_key.created"}]}`} {
		c := &Config{ConfigFile: write(bad)}
		if _, err := c.Catalog(); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
	if _, err := (&Config{ConfigFile: filepath.Join(dir, "missing.json")}).Catalog(); err == nil {
		t.Error("a missing file was accepted")
	}
}

// TestCacheMemory: --cache-memory is in MiB, 128 by default; the deprecated --cache-size N still
// works as N KiB unless --cache-memory is given too.
func TestCacheMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want int64
	}{
		{"default", nil, nil, 72 << 20},
		{"flag", nil, []string{"--cache-memory", "64"}, 64 << 20},
		{"environment", map[string]string{"KEYPLANE_CACHE_MEMORY": "32"}, nil, 32 << 20},
		{"deprecated count", nil, []string{"--cache-size", "100000"}, 100000 << 10},
		{"memory wins over count", nil, []string{"--cache-size", "100000", "--cache-memory", "16"}, 16 << 20},
	} {
		c, err := parse(t, tc.env, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.CacheMemory != tc.want {
			t.Errorf("%s: %d bytes, want %d", tc.name, c.CacheMemory, tc.want)
		}
	}
	for _, bad := range [][]string{{"--cache-memory", "0"}, {"--cache-memory", "lots"}, {"--cache-size", "10"}} {
		if _, err := parse(t, nil, bad...); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

// TestMemoryLimit: serve's soft memory limit follows the cache's bound unless given, yields to
// GOMEMLIMIT, and is refused when it would leave the node no room beside its cache.
func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want int64
	}{
		{"default", nil, nil, 200 << 20},
		{"follows the cache", nil, []string{"--cache-memory", "512"}, 640 << 20},
		{"flag", nil, []string{"--memory-limit", "1024"}, 1024 << 20},
		{"none", nil, []string{"--memory-limit", "0"}, 0},
		{"environment", map[string]string{"KEYPLANE_MEMORY_LIMIT": "300"}, nil, 300 << 20},
		{"GOMEMLIMIT wins over the default", map[string]string{"GOMEMLIMIT": "1GiB"}, nil, 0},
		{"the flag wins over GOMEMLIMIT", map[string]string{"GOMEMLIMIT": "1GiB"}, []string{"--memory-limit", "400"}, 400 << 20},
	} {
		c, err := parse(t, tc.env, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.MemoryLimit != tc.want {
			t.Errorf("%s: %d bytes, want %d", tc.name, c.MemoryLimit, tc.want)
		}
	}
	for _, bad := range [][]string{{"--memory-limit", "-1"}, {"--memory-limit", "lots"}, {"--memory-limit", "130"},
		{"--cache-memory", "512", "--memory-limit", "560"}} {
		if _, err := parse(t, nil, bad...); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

// TestEventRetention: --event-retention defaults to 30 days, reads KEYPLANE_EVENT_RETENTION, lets
// the flag win, and refuses what is not a Go duration of at least an hour.
func TestEventRetention(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.EventRetention != 30*24*time.Hour {
		t.Errorf("default event retention %s, want 720h", c.EventRetention)
	}
	env := map[string]string{"KEYPLANE_EVENT_RETENTION": "48h"}
	if c, err = parse(t, env); err != nil || c.EventRetention != 48*time.Hour {
		t.Errorf("from the environment: %v, %v", c, err)
	}
	if c, err = parse(t, env, "--event-retention", "2h"); err != nil || c.EventRetention != 2*time.Hour {
		t.Errorf("the flag must win: %v, %v", c, err)
	}
	for _, bad := range []string{"30d", "59m", "-1h", "0s", "forever", ""} {
		if _, err := parse(t, nil, "--event-retention", bad); err == nil || !strings.Contains(err.Error(), "--event-retention") {
			t.Errorf("--event-retention %q: %v, want an error naming the flag", bad, err)
		}
	}
}

func TestPortalSettings(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "" || len(c.PortalFrameAncestors) != 0 || c.PortalSessionTTL != time.Hour {
		t.Fatalf("portal defaults: %q %v %s", c.PublicURL, c.PortalFrameAncestors, c.PortalSessionTTL)
	}
	env := map[string]string{"KEYPLANE_PUBLIC_URL": "https://Keys.example.com/", "KEYPLANE_PORTAL_FRAME_ANCESTORS": "https://App.example.com, http://localhost:3000",
		"KEYPLANE_PORTAL_SESSION_TTL": "30m"}
	c, err = parse(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://keys.example.com" || strings.Join(c.PortalFrameAncestors, " ") != "https://app.example.com http://localhost:3000" || c.PortalSessionTTL != 30*time.Minute {
		t.Fatalf("portal settings from the environment: %q %v %s", c.PublicURL, c.PortalFrameAncestors, c.PortalSessionTTL)
	}
	c, err = parse(t, env, "--public-url", "http://127.0.0.1:8080/keys/", "--portal-frame-ancestors", "https://[2001:db8::1]:8443,http://[::1],http://127.0.0.1:9/", "--portal-session-ttl", "24h")
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "http://127.0.0.1:8080/keys" || strings.Join(c.PortalFrameAncestors, " ") != "https://[2001:db8::1]:8443 http://[::1] http://127.0.0.1:9" || c.PortalSessionTTL != 24*time.Hour {
		t.Fatalf("flags must win over the environment: %q %v %s", c.PublicURL, c.PortalFrameAncestors, c.PortalSessionTTL)
	}
	for _, c := range []struct{ flag, value string }{
		{"--public-url", "keys.example.com"},
		{"--public-url", "ftp://keys.example.com"},
		{"--public-url", "https://user:pw@keys.example.com"},
		{"--public-url", "https://keys.example.com/?a=1"},
		{"--public-url", "https:///path"},
		{"--portal-frame-ancestors", "http://app.example.com"},
		{"--portal-frame-ancestors", "https://*.example.com"},
		{"--portal-frame-ancestors", "https://app.example.com/settings"},
		{"--portal-frame-ancestors", "'self'"},
		{"--portal-frame-ancestors", "https://app.example.com;script-src"},
		{"--portal-frame-ancestors", "https://app.example.com:0"},
		{"--portal-frame-ancestors", "https://app.example.com:99999"},
		{"--portal-frame-ancestors", "app.example.com"},
		{"--portal-session-ttl", "59s"},
		{"--portal-session-ttl", "25h"},
		{"--portal-session-ttl", "soon"},
	} {
		if _, err := parse(t, nil, c.flag, c.value); err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%s %q: %v, want an error naming the flag", c.flag, c.value, err)
		}
	}
}
