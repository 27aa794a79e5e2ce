// Package kptest runs a real keyplane serve in process, on SQLite in a temporary data dir, for the
// tests of packages that use keyplane from outside (the Go SDK, the example programs): it creates an
// admin and a verify root key with the CLI, as an operator would, then serves on a free port. Its
// password hashes are password.Cheap(): a default one takes seconds under the race detector.
package kptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/cli"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/webhook"
)

// Password is the first operator admin's password.
const Password = "correct horse battery staple"

// Server is a running keyplane serve.
type Server struct {
	URL    string // http://127.0.0.1:port
	Admin  string // root key, admin scope
	Verify string // root key, verify scope
	// Logs holds what serve wrote to stdout and stderr.
	Logs *SyncBuffer
	// Guard keeps serve's webhooks on this machine; Close fails if it refused anything.
	Guard *webhook.Guard

	dataDir string
	cancel  context.CancelFunc
	done    chan error
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Start runs serve with env as its environment (KEYPLANE_DATA_DIR and KEYPLANE_ADMIN_PASSWORD are
// set unless env sets them; relative paths in env, such as KEYPLANE_CONFIG, are the test's). It
// returns once serve listens. Close stops it.
func Start(env map[string]string) (*Server, error) {
	dir, err := os.MkdirTemp("", "keyplane-test-")
	if err != nil {
		return nil, err
	}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		switch k {
		case "KEYPLANE_DATA_DIR":
			return dir
		case "KEYPLANE_ADMIN_PASSWORD":
			return Password
		}
		return ""
	}
	s := &Server{Logs: &SyncBuffer{}, Guard: &webhook.Guard{}, dataDir: dir, done: make(chan error, 1)}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	rootKey := func(name, scopes string) (string, error) {
		var out, errb bytes.Buffer
		p := &cli.Program{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv, WebhookGuard: s.Guard, PasswordParams: password.Cheap()}
		if err := p.Run(context.Background(), []string{"root-keys", "create", "--name", name, "--scopes", scopes}); err != nil {
			return "", fmt.Errorf("root-keys create: %w: %s", err, errb.String())
		}
		return strings.TrimSpace(out.String()), nil
	}
	if s.Admin, err = rootKey("test admin", "admin"); err != nil {
		return fail(err)
	}
	if s.Verify, err = rootKey("test verify", "verify"); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ready := make(chan string, 1)
	p := &cli.Program{Stdin: strings.NewReader(""), Stdout: s.Logs, Stderr: s.Logs, Getenv: getenv, Ready: func(a string) { ready <- a },
		WebhookGuard: s.Guard, PasswordParams: password.Cheap()}
	go func() { s.done <- p.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}) }()
	select {
	case a := <-ready:
		s.URL = "http://" + a
		return s, nil
	case err := <-s.done:
		cancel()
		return fail(fmt.Errorf("serve exited before listening: %v\n%s", err, s.Logs.String()))
	case <-time.After(30 * time.Second):
		cancel()
		<-s.done
		return fail(fmt.Errorf("serve did not listen within 30 s\n%s", s.Logs.String()))
	}
}

// Close stops serve as SIGTERM would, and removes its data. It returns serve's error, or an error if
// a webhook tried to leave the machine.
func (s *Server) Close() error {
	s.cancel()
	err := <-s.done
	os.RemoveAll(s.dataDir)
	if r := s.Guard.Refused(); len(r) > 0 {
		err = errors.Join(err, fmt.Errorf("webhooks tried to reach %q, off this machine", r))
	}
	return err
}

// StartT is Start for one test: it fails the test if serve does not start, and stops it when the
// test ends.
func StartT(t testing.TB, env map[string]string) *Server {
	t.Helper()
	s, err := Start(env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("serve returned %v", err)
		}
	})
	return s
}

// Guard returns a webhook.Guard for what the test builds (a service, a client, a serve or CLI run in
// process), and fails the test, when it ends, if the guard refused anything: some webhook tried to
// leave the machine, by a connection or by a DNS lookup.
func Guard(t testing.TB) *webhook.Guard {
	g := &webhook.Guard{}
	t.Cleanup(func() {
		if r := g.Refused(); len(r) > 0 {
			t.Errorf("webhooks tried to reach %q, off this machine", r)
		}
	})
	return g
}
