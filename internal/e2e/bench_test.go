package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/testkit"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// keyplaneBinary builds cmd/keyplane once for the tests that run the real binary.
func keyplaneBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "keyplane-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "keyplane")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/keyplane").CombinedOutput()
		if err != nil {
			binErr = err
			t.Logf("build:\n%s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("build keyplane: %v", binErr)
	}
	return binPath
}

// needWrk skips a test of the load harness in -short mode or where wrk is not installed (fails when
// KEYPLANE_REQUIRE_WRK says it must be).
func needWrk(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs wrk")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		testkit.Require(t, "WRK", "wrk is not installed (apt-get install wrk)")
	}
}

// TestBenchCommand runs `keyplane bench` small and short on both stores: every scenario answers what
// it should (the command checks each one's first key), wrk's requests all succeed, and the table has
// a row per store and scenario with a rate, a ratio to the ceiling, and no store reads where the
// scenario must need none; the constant-rate and management tables have a row per store. One run of
// each (the medians of several are bench.Median's, unit-tested; two runs here cost a minute of CI).
// It is the load harness's own
// test, not a measurement: no budget is asserted.
func TestBenchCommand(t *testing.T) {
	needWrk(t)
	bin := keyplaneBinary(t)
	stores := "sqlite"
	args := []string{"bench", "--keys", "3000", "--draws", "5000", "--duration", "1s", "--connections", "8", "--dir", t.TempDir(),
		"--runs", "1", "--rate", "500", "--create-rate", "5", "--warmup", "1s"}
	// The bench database is its own, on the suite's server (KEYPLANE_TEST_DATABASE_URL): a name of
	// this run's, which the command creates and drops when it is done.
	storetest.PostgresURL(t) // skips or fails as every PostgreSQL test does when there is none
	var b [6]byte
	rand.Read(b[:])
	u, err := url.Parse(storetest.AdminURL())
	if err != nil {
		t.Fatalf("%s: %v", storetest.EnvDatabaseURL, err)
	}
	u.Path = "/keyplane_bench_e2e_" + hex.EncodeToString(b[:])
	stores += ",postgres"
	args = append(args, "--database-url", u.String())
	cmd := exec.Command(bin, append(args, "--stores", stores)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keyplane bench: %v\n%s\n%s", err, out, stderr.String())
	}
	rows := map[string][]string{}
	rateRows, manageRows := map[string][]string{}, map[string][]string{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(l, "|")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		switch {
		case len(f) == 14 && f[2] == "500/s over 3000 keys":
			rateRows[f[1]] = f[1:13]
		case len(f) == 12 && f[2] == "5/s":
			manageRows[f[1]] = f[1:11]
		}
		if len(f) != 15 || !strings.Contains(f[1], "sqlite") && !strings.Contains(f[1], "postgres") {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		rows[f[1]+"/"+f[2]] = f[1:14]
	}
	for _, st := range strings.Split(stores, ",") {
		for _, sc := range []string{"one key, every request", "uniform over 3000 keys", "Zipf (s=1.1) over all 3000 keys",
			"well-formed keys that were never issued, each new", "10,000 keys that were never issued, repeated", "keys whose checksum fails"} {
			r, ok := rows[st+"/"+sc]
			if !ok {
				t.Errorf("no row for %s / %s in:\n%s", st, sc, out)
				continue
			}
			rps, _ := strconv.ParseFloat(r[2], 64)
			ratio, _ := strconv.ParseFloat(r[10], 64)
			reads, _ := strconv.ParseFloat(r[11], 64)
			if rps <= 0 || ratio <= 0 {
				t.Errorf("%s / %s: %v req/s, ratio %v", st, sc, rps, ratio)
			}
			if (sc == "one key, every request" || sc == "keys whose checksum fails") && reads != 0 {
				t.Errorf("%s / %s: %v store reads, want none", st, sc, reads)
			}
			if sc == "uniform over 3000 keys" && reads > 3000 {
				t.Errorf("%s / %s: %v store reads for 3000 keys", st, sc, reads)
			}
		}
	}
	for _, st := range strings.Split(stores, ",") {
		if r, ok := rateRows[st]; !ok || !strings.HasSuffix(r[3], " ms") || !strings.HasSuffix(r[7], " ms") || r[9] == "" {
			t.Errorf("%s: constant-rate row %q in:\n%s", st, r, out)
		} else if r[11] != "0" {
			// The warm-up verified every key once: the measured run reads none.
			t.Errorf("%s: the constant rate read the store %s times after its warm-up, want 0", st, r[11])
		}
		if r, ok := manageRows[st]; !ok || r[2] == "0" || !strings.HasSuffix(r[4], " ms") || !strings.HasSuffix(r[8], " ms") || r[9] == "" {
			t.Errorf("%s: management row %q in:\n%s", st, r, out)
		}
	}
	if n := strings.Count(stderr.String(), "constant rate, run "); n != len(strings.Split(stores, ",")) {
		t.Errorf("%d constant-rate runs, want 1 a store: %s", n, stderr.String())
	}
	if !strings.Contains(stderr.String(), "seeded 3000 keys") {
		t.Errorf("no seeding report: %s", stderr.String())
	}
}

// TestBenchSoak runs `keyplane bench --soak` for a few seconds: it finds a rate, drives it, samples
// the server, and reports its checks and the log's size on disk; the server writes the CPU profile
// asked for.
func TestBenchSoak(t *testing.T) {
	needWrk(t)
	profile := filepath.Join(t.TempDir(), "serve.pprof")
	cmd := exec.Command(keyplaneBinary(t), "bench", "--keys", "3000", "--draws", "5000", "--duration", "1s", "--connections", "8",
		"--dir", t.TempDir(), "--soak", "3s", "--cpuprofile", profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keyplane bench --soak: %v\n%s\n%s", err, out, stderr.String())
	}
	for _, want := range []string{"Soak on sqlite", "| time | server RSS | request log lag |", "(end) |", "| no entry lost |",
		"| RSS flat |", "| request log lag |", "per million entries", "| keyplane.db |"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("--cpuprofile: the server wrote no profile (%v)", err)
	}
}
