package postgres

import "time"

// SetHeartbeat shortens Listen's heartbeat and watchdog for tests.
func SetHeartbeat(db *DB, every, lost time.Duration) { db.heartbeat, db.silence = every, lost }
