package sqlstore

// Every statement of the store, written once with ? placeholders; DB.Rebind turns them into $n for
// PostgreSQL. The list queries are assembled from the fragments written beside them and nothing else,
// so the set of distinct statements (and of rebound copies cached) is small and fixed. Values never go
// into SQL text.
//
// Times are unix microseconds; JSON-ish fields are TEXT; see the migrations for the schema.
//
// Inserts say ON CONFLICT DO NOTHING and report a conflict when no row was written, and updates that
// could break a unique constraint check for it first, because a unique violation aborts the whole
// transaction on PostgreSQL but not on SQLite: this way a caller that gets store.ErrConflict can go on
// with its transaction on both. (Two transactions of different chains racing for the same value can
// still hit the constraint itself; that is reported as ErrConflict too.)
//
// One file per feature holds its statements, the scanners of its rows, its reads (queries methods)
// and its writes (tx methods): workspaces.go, members.go, keys.go (API keys and their secrets),
// notices.go (expiry notices), import.go, rootkeys.go, users.go, sessions.go, audit.go, webhooks.go
// (endpoints, events and deliveries), requestlogs.go (the request log and usage rollups), rewrap.go
// (the master key rotation) and publish.go (the change feed). What they share: sqlstore.go (the DB,
// its dialect and transactions), group.go (group commit), exclusive.go (RunExclusive), queries.go and
// tx.go (helpers of reads and writes), rows.go (encodings of times, lists and cursors).
