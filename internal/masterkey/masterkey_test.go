package masterkey

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k := bytes.Repeat([]byte{7}, 32)
	b, _ := New(k)
	sealed := b.Seal([]byte("kp_sk_live_secret"), []byte("ws_1/apk_1"))
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("plaintext visible in the sealed value")
	}
	if again := b.Seal([]byte("kp_sk_live_secret"), []byte("ws_1/apk_1")); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: the nonce is not fresh")
	}
	pt, err := b.Open(sealed, []byte("ws_1/apk_1"))
	if err != nil || string(pt) != "kp_sk_live_secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := b.Open(sealed, []byte("ws_2/apk_1")); err == nil {
		t.Fatal("opened with another record's associated data")
	}
	flipped := append([]byte{}, sealed...)
	flipped[len(flipped)-1] ^= 1
	if _, err := b.Open(flipped, []byte("ws_1/apk_1")); err == nil {
		t.Fatal("opened a tampered value")
	}
	other, _ := New(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open(sealed, []byte("ws_1/apk_1")); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another master key: %v, want ErrWrongKey", err)
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte master key was accepted")
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadOrCreate("", dir)
	if err != nil || !created || len(k1) != 32 {
		t.Fatalf("first start: %v %v %d", err, created, len(k1))
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	k2, created, err := LoadOrCreate("", dir)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatal("second start did not read the same key")
	}
	env := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	k3, created, err := LoadOrCreate(env, dir)
	if err != nil || created || !bytes.Equal(k3, bytes.Repeat([]byte{9}, 32)) {
		t.Fatal("KEYPLANE_MASTER_KEY was not preferred")
	}
	if _, _, err := LoadOrCreate("bm90IDMyIGJ5dGVz", dir); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func TestPreviousKeysOpen(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	old, _ := New(k1)
	sealedOld := old.Seal([]byte("value"), []byte("ad"))
	cur, err := New(k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := cur.Open(sealedOld, []byte("ad")); err != nil || string(pt) != "value" {
		t.Fatalf("a value sealed with the previous key: %q, %v", pt, err)
	}
	if cur.Current(sealedOld) {
		t.Error("a value sealed with the previous key reads as current")
	}
	sealedNew := cur.Seal([]byte("value"), []byte("ad"))
	if !cur.Current(sealedNew) {
		t.Error("a value sealed now reads as not current")
	}
	if _, err := old.Open(sealedNew, []byte("ad")); !errors.Is(err, ErrWrongKey) {
		t.Errorf("the old key opened a new value: %v", err)
	}
	if _, err := cur.Open(sealedOld, []byte("other ad")); err == nil {
		t.Error("a previous key's value opened with the wrong associated data")
	}
}

func TestRotateFiles(t *testing.T) {
	dir := t.TempDir()
	first, _, err := LoadOrCreate("", dir)
	if err != nil {
		t.Fatal(err)
	}
	newKey, oldKey, err := Rotate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(oldKey, first) || bytes.Equal(newKey, first) {
		t.Fatal("Rotate did not replace the key")
	}
	now, _, _ := LoadOrCreate("", dir)
	prev, err := LoadPrevious("", dir)
	if err != nil || !bytes.Equal(now, newKey) || !bytes.Equal(prev, first) {
		t.Errorf("after Rotate: key %x previous %x (%v)", now, prev, err)
	}
	for _, name := range []string{FileName, PreviousFileName} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, fi, err)
		}
	}
	if p, err := LoadPrevious("", t.TempDir()); p != nil || err != nil {
		t.Errorf("no previous file: %x %v", p, err)
	}
}

// TestLoadOrCreateConcurrent starts several processes' worth of first starts on one fresh data dir at
// once: each gets the same key, and one of them made it. A start that finds the file must never find
// it half written (nor could a start killed while writing leave it so).
func TestLoadOrCreateConcurrent(t *testing.T) {
	for trial := range 20 {
		dir := t.TempDir()
		const n = 8
		keys := make([][]byte, n)
		created := make([]bool, n)
		errs := make([]error, n)
		var ready, done sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				ready.Done()
				<-start
				keys[i], created[i], errs[i] = LoadOrCreate("", dir)
			}()
		}
		ready.Wait()
		close(start)
		done.Wait()
		makers := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("trial %d: start %d: %v", trial, i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("trial %d: starts got different keys", trial)
			}
			if created[i] {
				makers++
			}
		}
		if makers != 1 {
			t.Fatalf("trial %d: %d starts say they made the key, want 1", trial, makers)
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 || entries[0].Name() != FileName {
			t.Fatalf("trial %d: the data dir holds %v (%v), want the key file alone", trial, entries, err)
		}
	}
}
