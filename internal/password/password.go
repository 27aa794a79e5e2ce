// Package password hashes people's passwords with argon2id and checks them in constant time.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Parameters follow RFC 9106's second recommended option (64 MiB, 3 passes), with 2 lanes for a
// 2-core machine.
const (
	memoryKiB = 64 * 1024
	passes    = 3
	lanes     = 2
	saltLen   = 16
	keyLen    = 32
	// MinLength is the shortest password accepted.
	MinLength = 12
	// MaxLength bounds the work an attacker can make a hash do.
	MaxLength = 1024
)

// Params are argon2id's cost parameters. The zero Params is the cost every deployment hashes with:
// RFC 9106's second recommended option (the constants above).
type Params struct {
	MemoryKiB uint32
	Passes    uint32
	Lanes     uint8
}

// Cheap returns a cost for tests only (hundreds of times cheaper than the default, far too cheap for real
// passwords): under the race detector one default hash takes seconds of both cores, and the suites
// make hundreds of accounts and sign-ins. Tests of the hashing cost itself (the memory bound, the
// timing of sign-ins, the slots) keep the default. A deployment has no way to choose it: only Go
// code that builds a service (service.Options.PasswordParams, cli.Program.PasswordParams) can.
func Cheap() Params { return Params{MemoryKiB: 256, Passes: 1, Lanes: 1} }

func (p Params) orDefault() Params {
	if p == (Params{}) {
		return Params{MemoryKiB: memoryKiB, Passes: passes, Lanes: lanes}
	}
	return p
}

// Hash returns the PHC string of pw with the default cost: $argon2id$v=19$m=65536,t=3,p=2$salt$hash.
func Hash(pw string) string { return HashWith(pw, Params{}) }

// HashWith returns the PHC string of pw with the cost p (zero: the default). Check reads the cost back
// from the string.
func HashWith(pw string, p Params) string {
	p = p.orDefault()
	salt := make([]byte, saltLen)
	rand.Read(salt)
	sum := argon2.IDKey([]byte(pw), salt, p.Passes, p.MemoryKiB, p.Lanes, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Passes, p.Lanes, enc.EncodeToString(salt), enc.EncodeToString(sum))
}

// Check reports whether pw matches the PHC string, using the parameters stored in it.
func Check(phc, pw string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("password: not an argon2id hash")
	}
	var v int
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errors.New("password: unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 {
		return false, errors.New("password: bad argon2 parameters")
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, errors.New("password: bad salt")
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errors.New("password: bad hash")
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Generate returns a random password of 24 URL-safe characters (144 bits).
func Generate() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrBusy is Gate's answer when every slot stayed taken for its whole wait.
var ErrBusy = errors.New("password: too many passwords are being checked at once")

// Slots is how many hashes a Gate from NewGate lets run at once: one. Each holds 64 MiB for as long
// as it runs, and the garbage collector lets the heap grow to about twice what is live, so the slots
// set the process's peak: measured with 200 sign-ins at once (internal/e2e TestSignInMemoryBound),
// one slot peaked at about 240 MiB and two at 310 to 365 MiB, too near the 400 MiB budget. One hash
// already keeps two cores busy (two lanes), which is what a small machine has; on a big one a slot
// still checks 10 or more passwords a second, plenty for people signing in to a dashboard. A
// constant, not GOMAXPROCS: the memory bound must not grow with the core count.
const Slots = 1

// SlotWait is how long a Gate from NewGate waits for a slot before answering ErrBusy: long enough to
// queue a burst of sign-ins behind a few hashes, short enough that a flood is turned away instead of
// piling up.
const SlotWait = 2 * time.Second

// Gate bounds how many hashes run at once: a semaphore of slots. Without one, every concurrent
// sign-in holds its own 64 MiB, and a few hundred at once take the machine's memory.
type Gate struct {
	slots chan struct{}
	wait  time.Duration
}

// NewGate returns a Gate of n slots (at least 1) that waits up to wait for one.
func NewGate(n int, wait time.Duration) *Gate {
	return &Gate{slots: make(chan struct{}, max(n, 1)), wait: wait}
}

// Acquire takes a slot, waiting up to the gate's wait, and returns the function that gives it back:
// ErrBusy when none came free in time, or ctx's error when it ended first.
func (g *Gate) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *Gate) release() { <-g.slots }

// Check is the package's Check in a slot: ErrBusy when none came free in time.
func (g *Gate) Check(ctx context.Context, phc, pw string) (bool, error) {
	release, err := g.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return Check(phc, pw)
}

// Hash is the package's Hash in a slot: ErrBusy when none came free in time.
func (g *Gate) Hash(ctx context.Context, pw string) (string, error) {
	release, err := g.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return Hash(pw), nil
}
