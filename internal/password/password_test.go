package password

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHashCheck(t *testing.T) {
	h := Hash("correct horse battery staple")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q is not argon2id PHC with the chosen parameters", h)
	}
	if h2 := Hash("correct horse battery staple"); h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if ok, err := Check(h, "correct horse battery staple"); !ok || err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if ok, _ := Check(h, "correct horse battery stapl"); ok {
		t.Fatal("wrong password accepted")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=0,t=1,p=1$AA$AA", "plain"} {
		if ok, err := Check(bad, "x"); ok || err == nil {
			t.Errorf("Check(%q) = %v, %v", bad, ok, err)
		}
	}
	if g := Generate(); len(g) != 24 || g == Generate() {
		t.Fatalf("Generate = %q", g)
	}
}

// TestGate: no more hashes run at once than the gate has slots, and a caller who finds them all taken
// for the whole wait is answered ErrBusy without hashing.
func TestGate(t *testing.T) {
	g := NewGate(2, time.Hour)
	ctx := context.Background()
	release1, err := g.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release2, err := g.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short := &Gate{slots: g.slots, wait: time.Millisecond}
	if _, err := short.Check(ctx, Hash("x"), "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("check with every slot taken: %v; want ErrBusy", err)
	}
	if _, err := short.Hash(ctx, "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("hash with every slot taken: %v; want ErrBusy", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.Check(cctx, "", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("check with a cancelled context: %v", err)
	}
	// A waiting caller gets the slot given back.
	done := make(chan error, 1)
	go func() {
		_, err := g.Hash(ctx, "a long enough password")
		done <- err
	}()
	release1()
	if err := <-done; err != nil {
		t.Fatalf("waiting for a slot: %v", err)
	}
	release2()
	if len(g.slots) != 0 {
		t.Fatalf("%d slots still taken", len(g.slots))
	}
}

// TestHashWith: another cost is written into the hash, and Check reads it back from there.
func TestHashWith(t *testing.T) {
	h := HashWith("correct horse battery staple", Cheap())
	if !strings.HasPrefix(h, "$argon2id$v=19$m=256,t=1,p=1$") {
		t.Fatalf("hash %q does not carry the cheap parameters", h)
	}
	if ok, err := Check(h, "correct horse battery staple"); !ok || err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if ok, _ := Check(h, "correct horse battery stapl"); ok {
		t.Fatal("wrong password accepted")
	}
	if h := HashWith("x", Params{}); !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("zero Params hashed %q, not with the default cost", h)
	}
}
