package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchCeiling runs `keyplane bench ceiling` in process: it answers the keys of its file valid
// and others not found, refuses another bearer, is ready on /readyz, stops when its context ends, and
// refuses to start without its keys or root key; and waitReady, which the bench waits for it with.
func TestBenchCeiling(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("kp_live_one\nkp_live_two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{envCeilingRoot: "kp_root_test"}
	var stderr bytes.Buffer
	p := &Program{Stdout: io.Discard, Stderr: &stderr, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, []string{"bench", "ceiling", "--keys", file, "--addr", addr}) }()

	base := "http://" + addr
	if err := waitReady(base, done, 30*time.Second); err != nil {
		t.Fatalf("%v; %s", err, stderr.String())
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, c := range []struct {
		bearer, key string
		status      int
		want        string
	}{
		{"kp_root_test", "kp_live_two", 200, `"valid":true,"code":"VALID","keyId":"apk_1"`},
		{"kp_root_test", "kp_live_three", 200, `"valid":false,"code":"NOT_FOUND"`},
		{"kp_root_other", "kp_live_one", 401, ""},
	} {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/verify", strings.NewReader(`{"key":"`+c.key+`"}`))
		req.Header.Set("Authorization", "Bearer "+c.bearer)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("%s with %s: %d %s, want %d %s", c.key, c.bearer, res.StatusCode, body, c.status, c.want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after its context ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still serving 30 s after its context ended")
	}

	for _, args := range [][]string{{"bench", "ceiling"}, {"bench", "ceiling", "--keys", file, "extra"}} {
		if err := p.Run(context.Background(), args); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	env = map[string]string{}
	if err := p.Run(context.Background(), []string{"bench", "ceiling", "--keys", file}); !errors.Is(err, ErrUsage) {
		t.Errorf("without %s: %v, want a usage error", envCeilingRoot, err)
	}

	// waitReady tells a process that ended from one that is not ready yet: only the second is
	// stopped by startChild.
	exited := make(chan error, 1)
	exited <- errors.New("exit status 2")
	if err := waitReady("http://127.0.0.1:1", exited, time.Minute); err == nil || errors.Is(err, errNotReady) {
		t.Errorf("a process that ended: %v", err)
	}
	if err := waitReady("http://127.0.0.1:1", make(chan error), 0); !errors.Is(err, errNotReady) {
		t.Errorf("no answer and no time: %v, want errNotReady", err)
	}
}
