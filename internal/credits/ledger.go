// Package credits spends credit balances on the hot path without a database write per
// verification: each node takes a small block of a balance from the store, atomically, spends it in
// memory, and gives back what it did not use (docs/scaling.md, "Credits").
package credits

import (
	"context"

	"github.com/keyplane/keyplane"
)

// Ledger is where balances live. The store is one (store.Store has both calls, without refills);
// the service is the one a node uses, which applies due refills and records exhaustions, with their
// events, around the store's calls.
type Ledger interface {
	// TakeCredits takes credits out of a balance, atomically, as store.Store's does: t.Need or
	// nothing, and beyond it up to t.Want, at most t.Share of the balance it finds.
	TakeCredits(ctx context.Context, a keyplane.CreditAccount, t keyplane.CreditTake) (keyplane.CreditGrant, error)
	// ReturnCredits gives n credits back to a balance still at epoch, and reports whether it did.
	ReturnCredits(ctx context.Context, a keyplane.CreditAccount, n, epoch int64) (bool, error)
}
