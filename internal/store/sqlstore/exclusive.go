package sqlstore

import (
	"context"
	"sync"
)

// RunExclusive runs fn unless a run of the same name is under way, in this process (see
// store.Store). A database that one node serves needs no more; PostgreSQL's store, which several
// nodes share, adds an advisory lock inside it.
func (db *DB) RunExclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	unlock, ok := db.TryLocal(name)
	if !ok {
		return false, nil
	}
	defer unlock()
	return true, fn(ctx)
}

// TryLocal takes this process's lock named name without waiting, and reports whether it did; unlock
// gives it back.
func (db *DB) TryLocal(name string) (unlock func(), ok bool) {
	v, _ := db.jobs.LoadOrStore(name, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	if !mu.TryLock() {
		return nil, false
	}
	return mu.Unlock, true
}
