package credits

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyplane/keyplane"
)

// Options configure a Bank.
type Options struct {
	// Now is the clock of spend rates and idleness; nil: time.Now.
	Now func() time.Time
	// Idle is how long an account goes without a spend before its block is given back; default 2 s.
	Idle time.Duration
	// Hold is Idle for a block of a large balance (at least HoldBalance credits at the last take):
	// such a block is at most a few thousandths of a percent of it, and keeping it spares a take at
	// each return of a key used now and then; default 1 min.
	Hold time.Duration
	// Share bounds a block: at most this fraction of the balance the store last reported (but at
	// least what a spend needs); default 0.005, so that two nodes strand at most 1 % of a balance.
	Share float64
	// NoLoop leaves out the background loop: idle blocks are given back only by Sweep (for tests
	// that drive the clock).
	NoLoop bool
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultIdle  = 2 * time.Second
	DefaultHold  = time.Minute
	DefaultShare = 0.005
	// HoldBalance is the least balance whose blocks are kept for Hold rather than Idle: a block
	// then holds at most prefetch credits, 0.064 % of it.
	HoldBalance = 100_000
	// prefetch is the least a take asks for beyond what its spend needs, bounded by Share of the
	// balance in the store: a key used now and then costs one take per Hold, not one per use.
	prefetch = 64
	// blockSpan is how much of an account's recent spending a block holds.
	blockSpan = time.Second
)

// Charge names a balance a verification spends from, with the balance's epoch as the caller read
// it (keyplane.Credits.Epoch): a block of an older epoch is dropped before anything is spent.
type Charge struct {
	Account keyplane.CreditAccount
	Epoch   int64
}

// Outcome is what a spend did: OK when every balance had the cost (and each was spent), otherwise
// nothing was spent. Remaining is, per charge, the balance as this node sees it after the spend:
// what the store reported at the node's last take plus what the node holds.
type Outcome struct {
	OK        bool
	Remaining [2]int64
}

// Bank spends credit balances on one node. Each account it has spent from holds a block taken
// from the Ledger (debited there before it is spent, so a crash never gives spent credits back);
// a spend that the block covers is one atomic decrement, with no lock, no allocation and no I/O.
// Otherwise one take per account is in flight at a time and the other spends wait for it.
type Bank struct {
	ledger Ledger
	now    func() time.Time
	idle   time.Duration
	hold   time.Duration
	share  float64
	log    *slog.Logger
	seed   maphash.Seed
	shards [shards]shard
	closed atomic.Bool
	// takes and returns count the Ledger's calls, for the metrics.
	takes, returns atomic.Uint64
	// sweeping makes Sweep one at a time (the loop's and a test's).
	sweeping sync.Mutex
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

const shards = 64

type shard struct {
	mu sync.RWMutex
	m  map[string]*account
	_  [32]byte // each shard's lock on a cache line of its own
}

// retired is what a block holds once it is no longer the account's: far below any cost, so that
// spends see too little and go to the slow path, and refunds added to it stay negative.
const retired = math.MinInt64 / 4

// block is credits a node took from a balance of one epoch and has not spent yet.
type block struct {
	epoch int64
	held  atomic.Int64
}

// account is a balance as this node spends it.
type account struct {
	a   keyplane.CreditAccount
	blk atomic.Pointer[block]
	// remaining is the balance the store reported at the last take, before this node spent the
	// block it got.
	remaining atomic.Int64
	// used is set by every spend and cleared by Sweep, so that the hot path needs no clock.
	used atomic.Bool

	mu sync.Mutex // one take, or one give-back, at a time; held to replace blk
	// Under mu:
	dead      bool  // given back and dropped from the bank: spends look the account up again
	lastUsed  int64 // unix ns, when Sweep last saw it used
	lastTake  int64 // unix ns of the last take
	heldAfter int64 // what the block held right after the last take, for the spend rate
}

// NewBank returns a Bank spending from ledger. Close it to give back what it holds.
func NewBank(ledger Ledger, o Options) *Bank {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Idle <= 0 {
		o.Idle = DefaultIdle
	}
	if o.Hold <= 0 {
		o.Hold = DefaultHold
	}
	if o.Share <= 0 || o.Share > 1 {
		o.Share = DefaultShare
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bank{ledger: ledger, now: o.Now, idle: o.Idle, hold: o.Hold, share: o.Share, log: o.Logger, seed: maphash.MakeSeed(),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := range b.shards {
		b.shards[i].m = map[string]*account{}
	}
	if o.NoLoop {
		close(b.done)
	} else {
		go b.loop(o.Idle / 4)
	}
	return b
}

// ErrTooManyCharges: a spend is from one balance or two (a key's and its identity's).
var ErrTooManyCharges = errors.New("credits: at most two balances per spend")

// Spend spends cost from every charge's balance (one or two), all or none: when one has fewer than
// cost left, nothing is spent. A cost of 0 spends nothing and always succeeds, and reports the
// balances. An error means a take from the Ledger failed: the outcome is unknown, nothing spent.
func (b *Bank) Spend(ctx context.Context, cost int64, charges []Charge) (Outcome, error) {
	var out Outcome
	if len(charges) > 2 {
		return out, ErrTooManyCharges
	}
	if cost < 0 {
		cost = 0
	}
	var spent [2]*block
	for i := range charges {
		ok, rem, blk, err := b.spendOne(ctx, &charges[i], cost)
		if err != nil || !ok {
			for j := range i {
				b.refund(charges[j].Account, spent[j], cost)
			}
			if err != nil {
				return Outcome{}, err
			}
			out.Remaining[i] = rem
			for j := range i {
				out.Remaining[j] += cost
			}
			return out, nil
		}
		spent[i], out.Remaining[i] = blk, rem
	}
	out.OK = true
	return out, nil
}

// Stats reports the takes from the Ledger and the give-backs to it so far, and how many balances
// the bank holds now.
func (b *Bank) Stats() (takes, returns uint64, accounts int) {
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.RLock()
		accounts += len(s.m)
		s.mu.RUnlock()
	}
	return b.takes.Load(), b.returns.Load(), accounts
}

// Remaining reports a balance as this node sees it, without any I/O: ok false when the node has not
// taken from it since it last gave it back.
func (b *Bank) Remaining(a keyplane.CreditAccount) (int64, bool) {
	acc := b.find(a.ID())
	if acc == nil {
		return 0, false
	}
	blk := acc.blk.Load()
	if blk == nil {
		return acc.remaining.Load(), true
	}
	return acc.remaining.Load() + max(blk.held.Load(), 0), true
}

func (b *Bank) shard(id string) *shard { return &b.shards[maphash.String(b.seed, id)%shards] }

func (b *Bank) find(id string) *account {
	s := b.shard(id)
	s.mu.RLock()
	acc := s.m[id]
	s.mu.RUnlock()
	return acc
}

// account returns the bank's account of a, adding it on first use.
func (b *Bank) account(a keyplane.CreditAccount) *account {
	id := a.ID()
	if acc := b.find(id); acc != nil {
		return acc
	}
	s := b.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.m[id]
	if acc == nil {
		acc = &account{a: a}
		acc.used.Store(true)
		s.m[id] = acc
	}
	return acc
}

// spendOne spends cost from one balance: from the block when it holds enough (the fast path), else
// through a take. It returns the block spent from, for a refund.
func (b *Bank) spendOne(ctx context.Context, c *Charge, cost int64) (bool, int64, *block, error) {
	acc := b.account(c.Account)
	if !acc.used.Load() {
		acc.used.Store(true)
	}
	if blk := acc.blk.Load(); blk != nil && blk.epoch >= c.Epoch {
		for {
			h := blk.held.Load()
			if h < cost {
				break
			}
			if blk.held.CompareAndSwap(h, h-cost) {
				return true, acc.remaining.Load() + h - cost, blk, nil
			}
		}
	}
	return b.slow(ctx, acc, c, cost)
}

// maxTries bounds the takes of one spend: more than one happens only when a take finds the balance
// at a newer epoch than the block it was to top up.
const maxTries = 4

// slow spends through a take: under the account's lock, so that one take is in flight per account
// and the spends that queue behind it find its block filled.
func (b *Bank) slow(ctx context.Context, acc *account, c *Charge, cost int64) (bool, int64, *block, error) {
	acc.mu.Lock()
	if acc.dead {
		acc.mu.Unlock()
		return b.spendOne(ctx, c, cost) // given back meanwhile: a new account takes afresh
	}
	defer acc.mu.Unlock()
	minEpoch := c.Epoch
	for try := 0; ; try++ {
		blk := acc.blk.Load()
		if blk != nil && blk.epoch < minEpoch {
			// A set or a refill happened since the block was taken: its credits are of a balance
			// that is gone, and are dropped, never given back.
			blk.held.Swap(retired)
			acc.blk.Store(nil)
			blk = nil
		}
		var h int64
		if blk != nil {
			// Everything the block holds goes toward this spend; the spends that find it empty
			// meanwhile wait on the lock.
			if h = blk.held.Swap(0); h >= cost {
				blk.held.Add(h - cost)
				return true, acc.remaining.Load() + h - cost, blk, nil
			}
		}
		if try == maxTries {
			if blk != nil {
				blk.held.Add(h)
			}
			return false, acc.remaining.Load() + h, nil, nil
		}
		need := cost - h
		now := b.now().UnixNano()
		b.takes.Add(1)
		g, err := b.ledger.TakeCredits(ctx, acc.a, b.want(acc, need, h, now))
		if err != nil {
			if blk != nil {
				blk.held.Add(h)
			}
			return false, 0, nil, fmt.Errorf("credits: take from %s: %w", acc.a.ID(), err)
		}
		acc.remaining.Store(g.Remaining)
		acc.lastTake = now
		if blk != nil && g.Epoch > blk.epoch {
			// The balance moved to a new epoch since the block was taken: what it held is dropped.
			blk.held.Store(retired)
			acc.blk.Store(nil)
			blk, h = nil, 0
		}
		switch {
		case g.Got == 0 && need > 0:
			// Fewer than needed are left: nothing was taken, nothing is spent.
			if blk != nil {
				blk.held.Add(h)
			}
			acc.heldAfter = h
			return false, g.Remaining + h, nil, nil
		case blk != nil && g.Epoch == blk.epoch:
			left := h + g.Got - cost
			blk.held.Add(left)
			acc.heldAfter = left
			return true, g.Remaining + left, blk, nil
		case blk == nil:
			nb := &block{epoch: g.Epoch}
			nb.held.Store(g.Got)
			acc.blk.Store(nb)
			acc.heldAfter = g.Got
			minEpoch = max(minEpoch, g.Epoch)
			// The next round spends from the new block.
		default:
			// A take answered from an epoch older than the block's: a balance never goes back, so
			// only a store that did is here. What it gave is of a gone balance: dropped.
			blk.held.Add(h)
		}
	}
}

// want is what a take asks for: about a second of the account's recent spending, at least
// prefetch, and never less than need; beyond need, at most Share of the balance the take finds (the
// store bounds it, with the balance as it is then). h is what the block held before this take, for
// the spend since the last one. After Close, only need: nothing is left to give back later.
func (b *Bank) want(acc *account, need, h, now int64) keyplane.CreditTake {
	t := keyplane.CreditTake{Need: need, Want: need, Share: b.share}
	if b.closed.Load() {
		return t
	}
	w := float64(prefetch)
	if acc.lastTake != 0 && now > acc.lastTake {
		spent := float64(max(acc.heldAfter-h, 0)) + float64(need)
		w = max(w, spent*float64(blockSpan)/float64(now-acc.lastTake))
	}
	t.Want = max(int64(min(w, keyplane.MaxCredits)), need)
	return t
}

// refund puts cost back into the block a spend took it from, when the spend of another balance of
// the same verification failed. A block no longer the account's gives it to the account's current
// block of the same epoch; otherwise the cost is dropped (a spend that neither happened nor is
// given back: never an overspend).
func (b *Bank) refund(a keyplane.CreditAccount, blk *block, cost int64) {
	if blk == nil || cost == 0 {
		return
	}
	for {
		h := blk.held.Load()
		if h < 0 {
			break
		}
		if blk.held.CompareAndSwap(h, h+cost) {
			return
		}
	}
	acc := b.find(a.ID())
	if acc == nil {
		return
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	if cur := acc.blk.Load(); cur != nil && cur.epoch == blk.epoch {
		cur.held.Add(cost)
	}
}
