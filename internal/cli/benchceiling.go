package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/keyplane/keyplane/internal/bench"
)

// envCeilingRoot carries the bench's verify root key to the ceiling's process: an environment
// variable, not an argument, so that it is not in the process list.
const envCeilingRoot = "KEYPLANE_BENCH_ROOT_KEY"

// benchCeiling is `keyplane bench ceiling`: the ceiling handler in a process of its own, which the
// bench starts as it starts keyplane serve. Both are then measured alike: a process beside the load
// generator, with its own runtime, collector and scheduler. (In the bench's own process the ceiling
// shared the paced generator's runtime: its requests never crossed from one process to another, and
// the bench's heap, which holds every seeded key, was collected under both the generator and it.)
func (p *Program) benchCeiling(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keyplane bench ceiling", flag.ContinueOnError)
	fs.SetOutput(p.Stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	keysFile := fs.String("keys", "", "file of the keys it answers valid, one a line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return ErrUsage
	}
	root := p.Getenv(envCeilingRoot)
	if fs.NArg() > 0 || *keysFile == "" || root == "" {
		fmt.Fprintf(p.Stderr, "keyplane bench ceiling: --keys and %s are required; it takes no arguments (keyplane bench runs it)\n", envCeilingRoot)
		return ErrUsage
	}
	keys, err := readLines(*keysFile)
	if err != nil {
		return fmt.Errorf("bench ceiling: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/verify", bench.NewCeiling(root, keys))
	mux.HandleFunc("GET /readyz", func(http.ResponseWriter, *http.Request) {})
	keys = nil
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("bench ceiling: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("bench ceiling: %w", err)
	}
	return nil
}

// startCeiling writes values to a file in dir and starts `keyplane bench ceiling` on them as a child
// process, answering rootKey.
func startCeiling(ctx context.Context, exe, dir, rootKey string, values []string) (*benchServer, error) {
	file := filepath.Join(dir, "ceiling.keys")
	if err := bench.WriteKeys(file, values); err != nil {
		return nil, err
	}
	// The child has read the file once it is ready.
	defer os.Remove(file)
	return startChild(ctx, exe, dir, "ceiling.log", []string{"bench", "ceiling", "--keys", file}, map[string]string{envCeilingRoot: rootKey})
}

// readLines reads a file's lines.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}
