package webhook

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// ErrOffMachine is a Guard's refusal: the connection or lookup would have sent a packet off this
// machine.
var ErrOffMachine = errors.New("the test guard refuses to send a packet off this machine")

// Guard keeps webhook traffic on this machine, for the test suite, which must never send a packet
// to an address outside 127.0.0.0/8 and ::1. A Client given one refuses, just before connect(2),
// every other address, whatever its URLPolicy allows; and Lookup, which a Client and the service use
// in its place when no resolver is given, answers localhost names alone, since a lookup of any other
// name asks a DNS server. It keeps what it refused, so that a test harness can fail a test that
// tried. Production never has one. The zero value is ready; a Guard is safe for concurrent use.
type Guard struct {
	mu      sync.Mutex
	refused []string
}

// Refused returns what the guard refused, in order: addresses ("203.0.113.1:443") and names.
func (g *Guard) Refused() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.refused)
}

// Take returns what the guard refused and forgets it: for a test that means to trip the guard, so
// that its harness does not fail it for that.
func (g *Guard) Take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.refused
	g.refused = nil
	return r
}

func (g *Guard) refuse(what string) error {
	g.mu.Lock()
	g.refused = append(g.refused, what)
	g.mu.Unlock()
	return &offMachineError{what: what}
}

// checkAddr refuses an address (host:port, as connect(2) gets it) outside the loopback ranges.
func (g *Guard) checkAddr(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return g.refuse(address)
	}
	return nil
}

// Lookup answers localhost and its subdomains (RFC 6761) with 127.0.0.1 and ::1, and refuses every
// other name without asking anyone.
func (g *Guard) Lookup(_ context.Context, host string) ([]netip.Addr, error) {
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, nil
	}
	return nil, g.refuse(host)
}

// offMachineError is what a Guard refused.
type offMachineError struct{ what string }

func (e *offMachineError) Error() string {
	return "refused by the test guard: " + e.what + " is off this machine (only 127.0.0.0/8 and ::1 may be reached)"
}

func (e *offMachineError) Unwrap() error { return ErrOffMachine }
