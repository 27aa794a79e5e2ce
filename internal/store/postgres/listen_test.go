package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// freezer forwards TCP connections to target until frozen: then it stops passing bytes without
// closing anything, as a half-open connection or a firewall dropping an idle flow does.
type freezer struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	t.Cleanup(f.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, s)
			f.mu.Unlock()
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	return f
}

// close ends the proxy and every connection through it.
func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for f.frozen.Load() {
			time.Sleep(10 * time.Millisecond) // hold the bytes: nothing passes, nothing closes
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// TestListenNoticesSilentBreak: when the LISTEN connection goes silent without closing, the
// heartbeat's watchdog gives up on it (lost is called, so the node stops trusting its cache) instead
// of listening forever to nothing, and listens again once the network passes bytes again.
func TestListenNoticesSilentBreak(t *testing.T) {
	u, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	f := newFreezer(t, u.Host)
	u.Host = f.ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Before the pool closes (defers run last first), even when the test fails: a connection the
	// freeze left mid-query is not waited for.
	defer f.close()
	// A watchdog of seconds, not milliseconds: on a machine loaded by parallel test packages a
	// sound connection's heartbeat can be late by hundreds of milliseconds.
	postgres.SetHeartbeat(db, 100*time.Millisecond, 3*time.Second)
	ready, lost := make(chan struct{}, 10), make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, slog.New(slog.DiscardHandler), func(...[]byte) {}, func() {},
			func() { ready <- struct{}{} }, func() { lost <- struct{}{} })
	}()
	wait := func(what string, c chan struct{}) {
		t.Helper()
		select {
		case <-c:
		case <-time.After(time.Minute):
			t.Fatalf("%s: not within a minute", what)
		}
	}
	wait("listening", ready)
	// Heartbeats keep a sound connection: no loss over more than the watchdog's period.
	select {
	case <-lost:
		t.Fatal("a sound connection was given up")
	case <-time.After(4 * time.Second):
	}
	f.frozen.Store(true)
	frozen := time.Now()
	wait("the silent break noticed", lost)
	t.Logf("silent break noticed after %s", time.Since(frozen).Round(time.Millisecond))
	// Thawed, it listens again (and the node would purge its cache, then trust it).
	f.frozen.Store(false)
	wait("listening again", ready)
	cancel()
	<-done

}
