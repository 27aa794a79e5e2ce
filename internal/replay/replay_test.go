package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/redistest"
)

// once checks that of many concurrent Firsts of one signature exactly one is true, and that a second
// signature is new.
func once(t *testing.T, g Guard) {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	sig := hex.EncodeToString(b[:])
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			ok, err := g.First(context.Background(), sig, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Errorf("%d of 16 concurrent calls saw the signature first, want 1", firsts.Load())
	}
	if ok, _ := g.First(context.Background(), sig+"x", time.Minute); !ok {
		t.Error("another signature was not new")
	}
}

func TestLocal(t *testing.T) {
	g, err := NewLocal(1000)
	if err != nil {
		t.Fatal(err)
	}
	once(t, g)
}

func TestRedis(t *testing.T) {
	c := redistest.Client(t)
	once(t, NewRedis(c))
	// Two nodes: the second sees the first's signature.
	a, b := NewRedis(c), NewRedis(redistest.Client(t))
	sig := "two-nodes-" + time.Now().String()
	if ok, _ := a.First(context.Background(), sig, time.Minute); !ok {
		t.Fatal("new signature not new")
	}
	if ok, _ := b.First(context.Background(), sig, time.Minute); ok {
		t.Error("the second node took a signature the first had seen")
	}
}
