// Package bench is keyplane's load harness, behind `keyplane bench`: it seeds keys straight through the
// store, builds the request mixes of the scenarios (one hot key, uniform over 100k, Zipf over all,
// unknown keys each new or repeated, malformed keys), drives POST /v1/verify with wrk, and drives a bare net/http handler
// that does the least a verification can (decode the JSON, SHA-256 the key, look it up in a map) with
// the same requests in the same run: the ceiling keyplane is measured against.
package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/store"
)

// importBatch is how many keys one ImportAPIKeys call writes: large, because each call walks the
// digest index once, in order (digests are random, so smaller batches mean more walks), and small
// enough that a batch's rows stay some tens of megabytes.
const importBatch = 100_000

// Seed stores n live secret keys, spread evenly over workspaces, with ImportAPIKeys, and returns their
// values (the only copy: the store keeps digests). The keys are dealt out in runs: the first
// ceil(n / len(workspaces)) to the first workspace, and so on, so that each batch adds to a few
// workspaces' rows in order rather than to every workspace's.
func Seed(ctx context.Context, st store.Store, prefix string, workspaces []string, n int) ([]string, error) {
	return seed(ctx, st, prefix, workspaces, n, false)
}

// Metered credits and limits: what SeedMetered gives each key. The balance and the limits are far
// more than any run can spend (a hot key at 100,000 verifications a second for a minute spends
// 6·10^6), so that every verification of the metered mixes is VALID and each still spends a credit
// and counts against two limits.
var (
	MeteredCredits = keyplane.Credits{Remaining: keyplane.MaxCredits}
	MeteredLimits  = []keyplane.NamedRateLimit{
		{Name: "per-second", Limit: keyplane.MaxRateLimit, WindowMs: 1000, AutoApply: true},
		{Name: "per-10s", Limit: keyplane.MaxRateLimit, WindowMs: 10_000, AutoApply: true},
	}
)

// SeedMetered is Seed with keys that have credits and two auto-applied named limits (MeteredCredits,
// MeteredLimits): the population of the metered mixes.
func SeedMetered(ctx context.Context, st store.Store, prefix string, workspaces []string, n int) ([]string, error) {
	return seed(ctx, st, prefix, workspaces, n, true)
}

func seed(ctx context.Context, st store.Store, prefix string, workspaces []string, n int, metered bool) ([]string, error) {
	if len(workspaces) == 0 {
		return nil, fmt.Errorf("bench: no workspace to seed")
	}
	perWorkspace := (n + len(workspaces) - 1) / len(workspaces)
	values := make([]string, 0, n)
	start0 := time.Now().UTC().Truncate(time.Millisecond)
	by := keyplane.Actor{Type: keyplane.ActorSystem, ID: "bench", Name: "keyplane bench"}
	keys := make([]keyplane.APIKey, 0, importBatch)
	secrets := make([]keyplane.Secret, 0, importBatch)
	for start := 0; start < n; start += importBatch {
		keys, secrets = keys[:0], secrets[:0]
		// A millisecond a batch: ids (a millisecond and random bits) grow from batch to batch, so
		// every batch appends to the id indexes rather than landing all over them.
		now := start0.Add(time.Duration(start/importBatch) * time.Millisecond)
		for i := start; i < min(n, start+importBatch); i++ {
			ws := workspaces[i/perWorkspace]
			v := keyformat.Generate(prefix, "sk", "live")
			h := keyformat.Hash(v)
			k := keyplane.APIKey{
				ID: id.NewAt(id.APIKey, now), WorkspaceID: ws, Name: fmt.Sprintf("bench %d", i),
				KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive,
				Prefix: prefix + "_sk_live_", Start: keyformat.Start(prefix, v), End: keyformat.End(v),
				Enabled: true, Permissions: []string{}, IPAllowlist: []string{}, AllowedOrigins: []string{},
				Meta: json.RawMessage(`{}`), CreatedAt: now, UpdatedAt: now, CreatedBy: by,
			}
			if metered {
				c := MeteredCredits
				k.Credits, k.RateLimits = &c, MeteredLimits
			}
			keys = append(keys, k)
			secrets = append(secrets, keyplane.Secret{Hash: h[:], KeyID: k.ID, WorkspaceID: ws, CreatedAt: now})
			values = append(values, v)
		}
		if err := st.ImportAPIKeys(ctx, keys, secrets); err != nil {
			return nil, fmt.Errorf("bench: seeding keys %d–%d: %w", start, start+len(keys)-1, err)
		}
	}
	return values, nil
}

// Scenario is one request mix: the key values its requests carry, in order (wrk's threads start at
// different places and wrap around), and the code every one of them must get.
type Scenario struct {
	Name        string
	Description string
	Keys        []string
	Want        keyplane.VerifyCode
}

// ScenarioNames are the names of Scenarios' mixes, in their order, then MeteredScenarios'.
var ScenarioNames = []string{"hot", "uniform", "zipf", "unknown", "unknown-repeat", "malformed", "metered-hot", "metered-zipf"}

// MeteredScenarios are the mixes over keys seeded by SeedMetered: one hot key, and Zipf over all.
func MeteredScenarios(values []string, draws int, rnd *rand.Rand) []Scenario {
	n := len(values)
	zipf := make([]string, draws)
	z := rand.NewZipf(rnd, 1.1, 1, uint64(n-1))
	for i := range zipf {
		zipf[i] = values[z.Uint64()]
	}
	return []Scenario{
		{"metered-hot", "one key with credits and two named limits, every request", values[:1], keyplane.VerifyValid},
		{"metered-zipf", fmt.Sprintf("Zipf (s=1.1) over %d keys with credits and two named limits", n), zipf, keyplane.VerifyValid},
	}
}

// Scenarios are the mixes over the seeded values, each drawing draws requests (fewer for the
// single-key and malformed mixes, which need no more). rnd makes the draws repeatable.
func Scenarios(prefix string, values []string, draws int, rnd *rand.Rand) []Scenario {
	n := len(values)
	uniformN := min(n, 100_000)
	uniform := make([]string, draws)
	for i := range uniform {
		uniform[i] = values[rnd.IntN(uniformN)]
	}
	// s = 1.1: the top 1 % of keys get about 80 % of the requests, as a platform's busiest merchants do.
	zipf := make([]string, draws)
	z := rand.NewZipf(rnd, 1.1, 1, uint64(n-1))
	for i := range zipf {
		zipf[i] = values[z.Uint64()]
	}
	unknown := make([]string, draws)
	for i := range unknown {
		unknown[i] = keyformat.Generate(prefix, "sk", "live")
	}
	// A flood that repeats: 10,000 made-up keys over and over, which the negative cache absorbs.
	repeat := make([]string, draws)
	for i := range repeat {
		repeat[i] = unknown[i%min(len(unknown), 10_000)]
	}
	malformed := make([]string, min(draws, 100_000))
	for i := range malformed {
		v := []byte(values[rnd.IntN(n)])
		// Another base62 digit in the checksum: well-formed, but the checksum fails.
		if v[len(v)-1] == 'A' {
			v[len(v)-1] = 'B'
		} else {
			v[len(v)-1] = 'A'
		}
		malformed[i] = string(v)
	}
	return []Scenario{
		{"hot", "one key, every request", values[:1], keyplane.VerifyValid},
		{"uniform", fmt.Sprintf("uniform over %d keys", uniformN), uniform, keyplane.VerifyValid},
		{"zipf", fmt.Sprintf("Zipf (s=1.1) over all %d keys", n), zipf, keyplane.VerifyValid},
		{"unknown", "well-formed keys that were never issued, each new", unknown, keyplane.VerifyNotFound},
		{"unknown-repeat", "10,000 keys that were never issued, repeated", repeat, keyplane.VerifyNotFound},
		{"malformed", "keys whose checksum fails", malformed, keyplane.VerifyNotFound},
	}
}

// WriteKeys writes keys one a line, for the wrk script.
func WriteKeys(path string, keys []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, k := range keys {
		w.WriteString(k)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Ceiling is the least an HTTP verification can do, for comparison: authenticate the caller by
// comparing a header, decode {"key": …}, SHA-256 the key, look the digest up in a map, and answer JSON.
// It has no cache to miss, no checks, no log and no metrics: keyplane at this speed would be free.
type Ceiling struct {
	auth string
	keys map[[32]byte]string
}

// NewCeiling returns a Ceiling that knows values (by digest) and accepts rootKey as the bearer.
func NewCeiling(rootKey string, values []string) *Ceiling {
	c := &Ceiling{auth: "Bearer " + rootKey, keys: make(map[[32]byte]string, len(values))}
	for i, v := range values {
		c.keys[sha256.Sum256([]byte(v))] = fmt.Sprintf("apk_%d", i)
	}
	return c
}

type ceilingAnswer struct {
	Success bool `json:"success"`
	Data    struct {
		Valid bool   `json:"valid"`
		Code  string `json:"code"`
		KeyID string `json:"keyId,omitempty"`
	} `json:"data"`
}

func (c *Ceiling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != c.auth {
		http.Error(w, `{"success":false}`, http.StatusUnauthorized)
		return
	}
	var req struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, `{"success":false}`, http.StatusBadRequest)
		return
	}
	var a ceilingAnswer
	a.Success = true
	a.Data.Code = string(keyplane.VerifyNotFound)
	if id, ok := c.keys[sha256.Sum256([]byte(req.Key))]; ok {
		a.Data.Valid, a.Data.Code, a.Data.KeyID = true, string(keyplane.VerifyValid), id
	}
	b, _ := json.Marshal(&a)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// TempDir makes the harness's working folder under dir ("" for the system's).
func TempDir(dir string) (string, error) {
	d, err := os.MkdirTemp(dir, "keyplane-bench-")
	if err != nil {
		return "", err
	}
	return filepath.Abs(d)
}
