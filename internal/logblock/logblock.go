// Package logblock encodes a block of request log entries, those of one workspace written together,
// into one value: the request log stores a batch as a row per workspace rather than a row per entry,
// because a row per entry (its parameters bound one by one, its B-tree insert, its index entries)
// cost most of a verification's CPU on a busy node (docs/performance.md, "The request log in
// blocks").
//
// A block holds its entries in the order given and every field but the workspace, which the block's
// row holds. Strings that entries repeat (key ids, codes, paths, addresses, user agents, identities,
// tags) are stored once, in a table at the start, and referred to by index; times are deltas from the
// previous entry's. The format begins with a version byte, so that a later format can be read beside
// this one.
package logblock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keyplane/keyplane"
)

// version1 is the first byte of a block in this format.
const version1 = 1

// ErrCorrupt is returned for data that is not a block this package wrote.
var ErrCorrupt = errors.New("logblock: corrupt block")

// Encoder encodes blocks. It keeps its scratch space from one block to the next; it is not safe for
// concurrent use.
type Encoder struct {
	index map[string]uint64
	table []string
	body  []byte
}

// Encode appends the block of entries to dst and returns it.
func (e *Encoder) Encode(dst []byte, entries []keyplane.RequestLog) []byte {
	return e.encode(dst, len(entries), func(i int) *keyplane.RequestLog { return &entries[i] })
}

// EncodeOrder appends the block of entries[order[0]], entries[order[1]], … to dst and returns it:
// a block of a batch's entries picked in place, without copying them into a slice of their own.
func (e *Encoder) EncodeOrder(dst []byte, entries []keyplane.RequestLog, order []int) []byte {
	return e.encode(dst, len(order), func(i int) *keyplane.RequestLog { return &entries[order[i]] })
}

// encode appends the block of the n entries at(0), at(1), … to dst.
func (e *Encoder) encode(dst []byte, n int, at func(int) *keyplane.RequestLog) []byte {
	if e.index == nil {
		e.index = map[string]uint64{}
	}
	clear(e.index)
	e.table, e.body = e.table[:0], e.body[:0]
	ref := func(s string) {
		i, ok := e.index[s]
		if !ok {
			i = uint64(len(e.table))
			e.index[s] = i
			e.table = append(e.table, s)
		}
		e.body = binary.AppendUvarint(e.body, i)
	}
	var prev int64
	for i := range n {
		x := at(i)
		e.body = appendString(e.body, x.ID)
		ts := x.Timestamp.UnixMicro()
		e.body = binary.AppendVarint(e.body, ts-prev)
		prev = ts
		ref(x.KeyID)
		ref(string(x.Code))
		ref(string(x.Source))
		ref(x.Method)
		ref(x.Path)
		ref(x.IP)
		ref(x.UserAgent)
		ref(x.IdentityID)
		e.body = binary.AppendVarint(e.body, x.LatencyMicros)
		e.body = binary.AppendVarint(e.body, x.CreditsSpent)
		e.body = binary.AppendUvarint(e.body, uint64(len(x.Tags)))
		for _, t := range x.Tags {
			ref(t)
		}
	}
	// The block's size is known now: one allocation for it, not a doubling per append.
	size := 1 + 2*binary.MaxVarintLen64 + len(e.body)
	for _, s := range e.table {
		size += binary.MaxVarintLen64 + len(s)
	}
	dst = slices.Grow(dst, size)
	dst = append(dst, version1)
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = binary.AppendUvarint(dst, uint64(len(e.table)))
	for _, s := range e.table {
		dst = appendString(dst, s)
	}
	return append(dst, e.body...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Count returns how many entries the block holds, reading only its head.
func Count(data []byte) (int, error) {
	r := reader{b: data}
	if v := r.byte(); v != version1 {
		return 0, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(data)) {
		return 0, ErrCorrupt
	}
	return int(n), nil
}

// Decode calls fn with each entry of the block, in the order they were encoded, with workspaceID as
// their workspace, until fn returns false. The entry is fn's to keep: its strings share one copy of
// the block's data, made once.
func Decode(data []byte, workspaceID string, fn func(keyplane.RequestLog) bool) error {
	// One string for the whole block: every string field is a slice of it.
	r := reader{b: data, s: string(data)}
	if v := r.byte(); v != version1 {
		return fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	n := r.uvarint()
	size := r.uvarint()
	// Every entry and string takes at least a byte: larger counts are corrupt, and would make
	// allocations of any size.
	if r.err != nil || n > uint64(len(data)) || size > uint64(len(data)) {
		return ErrCorrupt
	}
	table := make([]string, size)
	for i := range table {
		table[i] = r.string()
	}
	str := func() string {
		i := r.uvarint()
		if i >= uint64(len(table)) {
			r.err = ErrCorrupt
			return ""
		}
		return table[i]
	}
	var ts int64
	for range n {
		var e keyplane.RequestLog
		e.ID, e.WorkspaceID = r.string(), workspaceID
		ts += r.varint()
		e.Timestamp = time.UnixMicro(ts).UTC()
		e.KeyID = str()
		e.Code = keyplane.VerifyCode(str())
		e.Source = keyplane.LogSource(str())
		e.Method, e.Path, e.IP, e.UserAgent, e.IdentityID = str(), str(), str(), str(), str()
		e.LatencyMicros, e.CreditsSpent = r.varint(), r.varint()
		if tags := r.uvarint(); tags > 0 {
			if tags > uint64(len(data)) {
				return ErrCorrupt
			}
			e.Tags = make([]string, tags)
			for i := range e.Tags {
				e.Tags[i] = str()
			}
		}
		if r.err != nil {
			return r.err
		}
		if !fn(e) {
			return nil
		}
	}
	if r.err == nil && r.i != len(r.b) {
		return fmt.Errorf("%w: %d bytes after the last entry", ErrCorrupt, len(r.b)-r.i)
	}
	return r.err
}

// reader reads a block; its first error sticks, and every later read returns zero.
type reader struct {
	b   []byte
	s   string // b as a string
	i   int
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || r.i >= len(r.b) {
		r.err = ErrCorrupt
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *reader) uvarint() uint64 { return readVar(r, binary.Uvarint) }

func (r *reader) varint() int64 { return readVar(r, binary.Varint) }

// readVar reads a varint of r's by decode (binary.Uvarint or binary.Varint).
func readVar[T uint64 | int64](r *reader, decode func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	v, n := decode(r.b[r.i:])
	if n <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.i += n
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)-r.i) {
		r.err = ErrCorrupt
		return ""
	}
	s := r.s[r.i : r.i+int(n)]
	r.i += int(n)
	return s
}
