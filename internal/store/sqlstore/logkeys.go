package sqlstore

import (
	"hash/maphash"
	"sync"
)

// A row of request_log_keys says that a key has entries in a workspace's blocks of one key span, five
// UTC minutes aligned on the epoch (keySpan): its last_id is the span's floor id (id.Floor). Rows
// written by older versions hold the floor id of one minute, or the last_id of one block, of the
// same span, so readers and pruning take any id of a span alike. A row per key and block cost a
// random B-tree insert for each key of each batch (a Zipf mix over 100,000 keys: thousands a batch),
// and those inserts were most of the log's cost; a row per key and minute was still 14 % of a node
// serving 100,000 keys uniformly (each key a row a minute, each a page written); a row per key and
// span, written once by each node (LogKeysSeen), costs a fifth of that. A page of one key's entries
// reads the filters of the workspace's blocks of each span the key has entries in, and decodes the
// blocks whose key filter (request_log_filters) may hold it.

// LogKeysSeen remembers, per key of the recent blocks this node wrote, the newest span whose row of
// request_log_keys it wrote, so that a batch writes only the rows that are new. It is only an economy:
// a row written again is ignored by the insert (ON CONFLICT DO NOTHING), as it is when another node or
// a restarted one writes it, so forgetting is always safe. It is safe for concurrent use.
type LogKeysSeen struct {
	mu          sync.Mutex
	seed, seed2 maphash.Seed
	// newest is, per key (two hashes of its workspace and id: a collision of both, which would leave
	// out a row, has a chance of about 2^-128), the newest span (unix µs) whose row was written.
	newest map[[2]uint64]int64
	// top is the newest span written; keys whose newest span is older than the one before it are
	// forgotten when it moves on, so that the map holds the recently used keys only (entries of the
	// span before still come in late, for a moment, after a new one begins).
	top int64
}

// NewLogKeysSeen returns an empty LogKeysSeen.
func NewLogKeysSeen() *LogKeysSeen {
	return &LogKeysSeen{seed: maphash.MakeSeed(), seed2: maphash.MakeSeed(), newest: map[[2]uint64]int64{}}
}

func (s *LogKeysSeen) hash(workspaceID, keyID string) [2]uint64 {
	var h [2]uint64
	for i, seed := range [2]maphash.Seed{s.seed, s.seed2} {
		var m maphash.Hash
		m.SetSeed(seed)
		m.WriteString(workspaceID)
		m.WriteByte(0)
		m.WriteString(keyID)
		h[i] = m.Sum64()
	}
	return h
}

// LogKeyRow is a row of request_log_keys: KeyID has entries in WorkspaceID's blocks of the key span
// whose floor id is SpanID.
type LogKeyRow struct {
	WorkspaceID, KeyID, SpanID string
	span                       int64     // unix µs
	hash                       [2]uint64 // the key's, as LogKeysSeen.LogKeyRows found it
}

// Values returns the row's values in the order of LogKeyColumns.
func (r *LogKeyRow) Values() []any { return []any{r.WorkspaceID, r.KeyID, r.SpanID} }

// LogKeyRows returns the key rows of blocks, each once, leaving out those s says this node wrote
// already (none when s is nil).
func (s *LogKeysSeen) LogKeyRows(blocks []LogBlock) []LogKeyRow {
	if s != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	var out []LogKeyRow
	// A batch's blocks of one workspace and two minutes of one span (LogBlocks orders them by
	// workspace and minute, so they are next to each other) name their keys twice: group is the
	// span's keys given so far, made only when a group has a second block, which is rare.
	groupStart := 0
	var group map[string]bool
	for i := range blocks {
		b := &blocks[i]
		if i > 0 && blocks[i-1].WorkspaceID == b.WorkspaceID && blocks[i-1].Span == b.Span {
			if group == nil {
				group = map[string]bool{}
				for _, r := range out[groupStart:] {
					group[r.KeyID] = true
				}
			}
		} else {
			groupStart, group = len(out), nil
		}
		for _, k := range b.Keys {
			if group[k] {
				continue
			}
			var h [2]uint64
			if s != nil {
				h = s.hash(b.WorkspaceID, k)
				if m, ok := s.newest[h]; ok && m == b.Span {
					continue
				}
			}
			if group != nil {
				group[k] = true
			}
			out = append(out, LogKeyRow{WorkspaceID: b.WorkspaceID, KeyID: k, SpanID: b.SpanID, span: b.Span, hash: h})
		}
	}
	return out
}

// Write writes the key rows of blocks that this node has not written yet: write gets them, to write
// in the transaction of the blocks. When it succeeds they are recorded; when it fails, everything is
// forgotten (Forget).
func (s *LogKeysSeen) Write(blocks []LogBlock, write func(keys []LogKeyRow) error) error {
	keys := s.LogKeyRows(blocks)
	if err := write(keys); err != nil {
		s.Forget()
		return err
	}
	s.written(keys)
	return nil
}

// Forget forgets every row written: after a write failed, the database may have lost what it
// acknowledged before (PostgreSQL's log commits do not wait for the disk, and a crash of the
// database takes their last fraction of a second), and the rows are written again.
func (s *LogKeysSeen) Forget() {
	if s == nil {
		return
	}
	s.mu.Lock()
	clear(s.newest)
	s.mu.Unlock()
}

// written records rows, made by s.LogKeyRows, as committed.
func (s *LogKeysSeen) written(rows []LogKeyRow) {
	if s == nil || len(rows) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	top := s.top
	for i := range rows {
		r := &rows[i]
		if m, ok := s.newest[r.hash]; !ok || r.span > m {
			s.newest[r.hash] = r.span
		}
		top = max(top, r.span)
	}
	if top > s.top {
		s.top = top
		for h, m := range s.newest {
			if m < top-keySpanMicros {
				delete(s.newest, h)
			}
		}
	}
}
