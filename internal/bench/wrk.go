package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkScript sends POST /v1/verify with {"key": …} for each line of the keys file, in order from a
// place of the thread's own, wrapping around. The file, the root key and the number of threads come as
// arguments.
const wrkScript = `
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local keys, n, i = {}, 0, 0
local headers = {}
function init(args)
  for line in io.lines(args[1]) do
    n = n + 1
    keys[n] = line
  end
  headers["Authorization"] = "Bearer " .. args[2]
  headers["Content-Type"] = "application/json"
  i = math.floor(n * (tid or 0) / tonumber(args[3]))
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return wrk.format("POST", "/v1/verify", headers, '{"key":"' .. keys[i] .. '"}')
end
`

// Load is how wrk drives a server.
type Load struct {
	Connections int
	Threads     int
	Duration    time.Duration
}

// Result is one wrk run.
type Result struct {
	Requests int64
	RPS      float64
	P50, P99 time.Duration
	// Errors counts socket errors and non-2xx answers.
	Errors int64
}

// Wrk finds the wrk binary: $KEYPLANE_WRK, else wrk on the PATH.
func Wrk() (string, error) {
	if p := os.Getenv("KEYPLANE_WRK"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("wrk")
	if err != nil {
		return "", errors.New("bench: wrk not found (apt-get install wrk, or set KEYPLANE_WRK)")
	}
	return p, nil
}

// Drive runs wrk against baseURL's /v1/verify with the keys of keysFile, from the folder dir (where
// the script is written).
func Drive(ctx context.Context, wrk, dir, baseURL, rootKey, keysFile string, l Load) (Result, error) {
	script := filepath.Join(dir, "verify.lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
			return Result{}, err
		}
	}
	secs := max(1, int(l.Duration.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, wrk, "--latency", "-t", strconv.Itoa(l.Threads), "-c", strconv.Itoa(l.Connections),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "5s", "-s", script, baseURL, "--", keysFile, rootKey, strconv.Itoa(l.Threads))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("bench: wrk: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return parseWrk(out.String())
}

var (
	reRPS       = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reTotal     = regexp.MustCompile(`(\d+) requests in`)
	reLatency   = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	reNon2xx    = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSockErr   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	durationFor = map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}
)

// parseWrk reads wrk --latency's report.
func parseWrk(s string) (Result, error) {
	var r Result
	m := reRPS.FindStringSubmatch(s)
	t := reTotal.FindStringSubmatch(s)
	if m == nil || t == nil {
		return r, fmt.Errorf("bench: wrk's report has no request rate:\n%s", s)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	r.Requests, _ = strconv.ParseInt(t[1], 10, 64)
	for _, l := range reLatency.FindAllStringSubmatch(s, -1) {
		f, _ := strconv.ParseFloat(l[2], 64)
		d := time.Duration(f * float64(durationFor[l[3]]))
		if l[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	if m := reSockErr.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			r.Errors += n
		}
	}
	return r, nil
}
