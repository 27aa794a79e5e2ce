package credits

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// giveBackTimeout bounds one give-back: the loop must not hang on a store that does not answer.
const giveBackTimeout = 5 * time.Second

// loop gives back idle blocks until Close.
func (b *Bank) loop(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.Sweep(context.Background())
		}
	}
}

// Sweep gives back the blocks of the accounts no spend has used for their idle delay (idleOf), and
// forgets those accounts. It returns how many credits it gave back. The background loop calls it a few
// times per idle delay; tests that drive the clock call it themselves.
func (b *Bank) Sweep(ctx context.Context) int64 {
	b.sweeping.Lock()
	defer b.sweeping.Unlock()
	now := b.now().UnixNano()
	var idle []*account // each locked, for giveBackAll
	for _, acc := range b.accounts() {
		if acc.used.Swap(false) {
			acc.mu.Lock()
			acc.lastUsed = now
			acc.mu.Unlock()
			continue
		}
		acc.mu.Lock()
		if acc.used.Load() || now-acc.lastUsed < int64(b.idleOf(acc)) {
			acc.mu.Unlock()
			continue
		}
		idle = append(idle, acc)
	}
	return b.giveBackAll(ctx, idle)
}

// giveBackAll gives back the blocks of accs, each locked by the caller, and drops the accounts that
// hold nothing then; it unlocks each. Give-backs run side by side (sweepWorkers at a time): on
// SQLite they then share the group commit's fsyncs, and on PostgreSQL their round trips overlap,
// instead of one after another (a node that held 50,000 balances took a minute to shut down so).
func (b *Bank) giveBackAll(ctx context.Context, accs []*account) int64 {
	var given atomic.Int64
	sem := make(chan struct{}, sweepWorkers)
	var wg sync.WaitGroup
	for _, acc := range accs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			defer acc.mu.Unlock()
			n, ok := b.giveBack(ctx, acc)
			if ok {
				given.Add(n)
				b.drop(acc)
			}
		})
	}
	wg.Wait()
	return given.Load()
}

// idleOf is how long acc may go without a spend before its block is given back, under acc.mu: Hold
// for a block that holds credits of a large balance, else Idle.
func (b *Bank) idleOf(acc *account) time.Duration {
	if blk := acc.blk.Load(); blk != nil && blk.held.Load() > 0 && acc.remaining.Load() >= HoldBalance {
		return b.hold
	}
	return b.idle
}

// sweepWorkers is how many give-backs a sweep runs at once.
const sweepWorkers = 32

// Close stops the loop and gives back every block, idle or not: a clean shutdown strands nothing.
// Spends after Close take only what they need, so they strand nothing either.
func (b *Bank) Close(ctx context.Context) error {
	b.closed.Store(true)
	b.once.Do(func() { close(b.stop) })
	<-b.done
	b.sweeping.Lock()
	defer b.sweeping.Unlock()
	accs := b.accounts()
	for _, acc := range accs {
		acc.mu.Lock()
	}
	b.giveBackAll(ctx, accs)
	return nil
}

// accounts lists the bank's accounts.
func (b *Bank) accounts() []*account {
	var all []*account
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.RLock()
		for _, acc := range s.m {
			all = append(all, acc)
		}
		s.mu.RUnlock()
	}
	return all
}

// giveBack returns an account's block to the Ledger, under acc.mu, and reports how much and
// whether the account holds nothing now. A give-back the store refuses (the balance moved to another
// epoch) drops the block; so does one that fails (see below).
func (b *Bank) giveBack(ctx context.Context, acc *account) (int64, bool) {
	blk := acc.blk.Load()
	if blk == nil {
		return 0, true
	}
	n := blk.held.Swap(retired)
	acc.blk.Store(nil)
	if n <= 0 {
		return 0, true
	}
	ctx, cancel := context.WithTimeout(ctx, giveBackTimeout)
	defer cancel()
	b.returns.Add(1)
	ok, err := b.ledger.ReturnCredits(ctx, acc.a, n, blk.epoch)
	if err != nil {
		// The give-back may have committed all the same (a timeout after the commit): spending the
		// block now, or giving it back again, could spend those credits twice. They are stranded
		// instead, which costs the customer at most a block and never overspends.
		b.log.Warn("credits: giving back a block failed; its credits are stranded", "account", acc.a.ID(), "credits", n, "err", err)
		return 0, true
	}
	if !ok {
		return 0, true // a set or a refill happened: the block's credits are of a gone balance
	}
	acc.remaining.Add(n)
	return n, true
}

// drop removes an account that holds nothing from the bank, under acc.mu: a later spend adds it
// again and takes afresh.
func (b *Bank) drop(acc *account) {
	id := acc.a.ID()
	s := b.shard(id)
	s.mu.Lock()
	if s.m[id] == acc {
		delete(s.m, id)
	}
	s.mu.Unlock()
	acc.dead = true
}
