package sqlstore

import (
	"context"
	"sync"
)

// RunExclusive runs fn unless a run of the same name is under way, in this process (see
// store.Store). A database that one node serves needs no more; PostgreSQL's store, which several
// nodes share, replaces it with an advisory lock.
func (db *DB) RunExclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	v, _ := db.jobs.LoadOrStore(name, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	if !mu.TryLock() {
		return false, nil
	}
	defer mu.Unlock()
	return true, fn(ctx)
}
