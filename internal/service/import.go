package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/store"
)

// MaxImportBatch is the most keys one import call takes (API.md: at most 1,000 per call).
const MaxImportBatch = 1000

// ActionAPIKeyImported is the audit action of each imported key. Imports send no webhook events:
// an import is a migration of keys that already exist elsewhere, not a change a tenant's systems act
// on one key at a time, and a migration of a million keys must not queue a million deliveries. The
// audit trail records every key.
const ActionAPIKeyImported = "api_key.imported"

// ImportKeyInput is one key migrated in from another system: its settings, as a created key's, and
// its existing value, either as it is (Value) or as the SHA-256 digest of it (Hash), exactly one.
type ImportKeyInput struct {
	CreateKeyInput
	Value string
	Hash  *ImportHash
	// CreatedAt is when the other system made the key; nil: now. It may not lie in the future.
	CreatedAt *time.Time
	// Err, set by the caller, is why the item could not be read (a field of the wrong type, a time
	// that does not parse): it is the item's answer, and the item is not imported.
	Err error
}

// ImportHash is a value given by its digest.
type ImportHash struct {
	Algorithm string // only "sha256"
	Digest    string // hex
}

// ImportResult is one item's outcome: ID when it was imported, else Err.
type ImportResult struct {
	Index int
	ID    string
	Err   *keyplane.Error
}

// importItem is an item that passed its own checks, on its way into the store.
type importItem struct {
	index int
	in    *ImportKeyInput
	d     *keyDraft
	hash  []byte
	field string // where the value was given: value or hash.digest
}

// ImportAPIKeys brings keys that already exist elsewhere into the workspace, keeping their values:
// each item is checked as a created key is (draftKey), and any item that fails gets its own error
// while the others are imported, in one transaction, each with its audit entry. Values are stored as
// digests only: an imported secret key is never recoverable. A value already stored, or given twice
// in the batch, fails its item; once the workspace's maxKeys is reached, the remaining items fail with
// key_limit_reached. A test key's default expiry counts from the import, not from createdAt.
func (s *Service) ImportAPIKeys(ctx context.Context, c *keyplane.Caller, wsID string, in []ImportKeyInput) ([]ImportResult, error) {
	if err := c.Authorize(wsID, keyplane.PermAPIKeysWrite); err != nil {
		return nil, err
	}
	if c.Portal {
		return nil, portalRefusal("importing keys")
	}
	w, err := s.GetWorkspace(ctx, c, wsID)
	if err != nil {
		return nil, err
	}
	switch {
	case len(in) == 0:
		return nil, &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid keys",
			Details: []keyplane.FieldError{{Field: "keys", Message: "must hold at least one key"}}}
	case len(in) > MaxImportBatch:
		return nil, &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid keys",
			Details: []keyplane.FieldError{{Field: "keys", Message: fmt.Sprintf("at most %d keys per call; send the rest in further calls", MaxImportBatch)}}}
	}
	now := s.clock()
	results := make([]ImportResult, len(in))
	var items []importItem
	first := map[[32]byte]int{}
	for i := range in {
		results[i].Index = i
		item, err := s.checkImport(c, w, &in[i], now)
		if err == nil {
			h := [32]byte(item.hash)
			if j, dup := first[h]; dup {
				err = invalidItem(valueField(&in[i]), "is the same value as keys[%d]; each value is imported once", j)
			} else {
				first[h] = i
			}
		}
		if err != nil {
			if results[i].Err, err = itemError(err); err != nil {
				return nil, err
			}
			continue
		}
		item.index, item.in = i, &in[i]
		items = append(items, item)
	}
	if len(items) == 0 {
		return results, nil
	}
	var hashes [][]byte
	err = s.inTx(ctx, wsID, func(tx store.Tx) error {
		hashes = hashes[:0]
		now := s.clock()
		// The transaction may run again: every answer it gives starts over.
		for _, it := range items {
			results[it.index].ID, results[it.index].Err = "", nil
		}
		ok, err := s.admitImports(ctx, tx, c, wsID, items, results, now)
		if err != nil || len(ok) == 0 {
			return err
		}
		keys := make([]keyplane.APIKey, len(ok))
		secrets := make([]keyplane.Secret, len(ok))
		for i, it := range ok {
			keys[i] = *it.d.k
			secrets[i] = keyplane.Secret{Hash: it.hash, KeyID: it.d.k.ID, WorkspaceID: wsID, CreatedAt: now}
			hashes = append(hashes, it.hash)
		}
		// The digests reach this node's filters before the values can verify anywhere (insertSecret).
		s.admit(hashes...)
		if err := tx.InsertImportedKeys(ctx, keys, secrets); err != nil {
			return err
		}
		records := make([]*keyplane.AuditRecord, len(ok))
		for i, it := range ok {
			k := it.d.k
			if it.d.credits != nil {
				if err := tx.SetCredits(ctx, keyAccount(k), it.d.credits); err != nil {
					return err
				}
				k.Credits = it.d.credits
			}
			view := k.View(now)
			changes := diff(nil, view, "id", "workspaceId", "updatedAt", "createdBy", "lastUsedAt", "disabledAt", "revokedAt")
			changes["imported"] = keyplane.Change{To: true}
			records[i] = &keyplane.AuditRecord{Action: ActionAPIKeyImported, Target: keyTarget(k), Changes: changes}
			results[it.index].ID = k.ID
		}
		if err := s.appendAudits(ctx, tx, c, wsID, now, records); err != nil {
			return err
		}
		// Every node forgets a cached "unknown" of these digests and admits them to its filters.
		if err := tx.Publish(ctx, hashes); err != nil {
			return fmt.Errorf("publish invalidation: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.forget(hashes...)
	return results, nil
}

// admitImports decides, inside the change, which items go in: not those whose value is stored
// already, nor those beyond the workspace's maxKeys; each item that goes in gets its identity. It
// answers the others in results.
func (s *Service) admitImports(ctx context.Context, tx store.Tx, c *keyplane.Caller, wsID string, items []importItem, results []ImportResult, now time.Time) ([]importItem, error) {
	w, err := tx.GetWorkspace(ctx, wsID)
	if err != nil {
		return nil, notFound(err, "workspace")
	}
	n, err := tx.CountKeys(ctx, wsID)
	if err != nil {
		return nil, err
	}
	all := make([][]byte, len(items))
	for i, it := range items {
		all[i] = it.hash
	}
	stored, err := tx.StoredSecrets(ctx, all)
	if err != nil {
		return nil, err
	}
	taken := make(map[[32]byte]bool, len(stored))
	for _, h := range stored {
		if len(h) == 32 {
			taken[[32]byte(h)] = true
		}
	}
	var ok []importItem
	for _, it := range items {
		r := &results[it.index]
		// Checked again against the workspace as this change reads it: the first check used the one
		// read before, and live mode or the test keys' lifetime may have changed since, as a
		// creation, which reads it in its change, would see.
		again, err := s.checkImport(c, w, it.in, now)
		if err != nil {
			if r.Err, err = itemError(err); err != nil {
				return nil, err
			}
			continue
		}
		again.index, again.in = it.index, it.in
		it = again
		switch {
		case taken[[32]byte(it.hash)]:
			// Whose key it is, in whatever workspace, is not said: a value of another workspace
			// must not be confirmed to its callers.
			r.Err = &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "this value is already stored as a key's value",
				Details: []keyplane.FieldError{{Field: it.field, Message: "is already stored; each value is imported once"}}}
			continue
		case n >= w.MaxKeys:
			r.Err = keyplane.Errorf(keyplane.CodeKeyLimitReached, "this workspace has %d keys, its limit; revoke some (revoked keys do not count) or ask for a higher limit", n)
			continue
		}
		k := it.d.k
		if it.d.externalID != "" || it.d.identityID != "" {
			i, err := s.resolveIdentity(ctx, tx, c, wsID, it.d.externalID, it.d.identityID, now)
			if err != nil {
				if r.Err, err = itemError(err); err != nil {
					return nil, err
				}
				continue
			}
			k.IdentityID, k.Identity = i.ID, i
		}
		k.UpdatedAt = now
		if k.CreatedAt.IsZero() {
			k.CreatedAt = now
		}
		n++
		ok = append(ok, it)
	}
	return ok, nil
}

// checkImport applies a created key's rules to an item, and the import's own: a value or a digest,
// exactly one, of a secret key that is never recoverable.
func (s *Service) checkImport(c *keyplane.Caller, w *keyplane.Workspace, in *ImportKeyInput, now time.Time) (importItem, error) {
	if in.Err != nil {
		return importItem{}, in.Err
	}
	if in.KeyType == "" {
		in.KeyType = keyplane.KeyTypeSecret
	}
	var v keyplane.Validation
	if in.KeyType != keyplane.KeyTypeSecret {
		v.Add("keyType", "must be secret: imported values are kept as digests only, and a publishable key's value must be shown again")
	}
	if in.Recoverable {
		v.Add("recoverable", "an imported key is never recoverable: only its digest is stored")
	}
	var h []byte
	switch {
	case in.Value != "" && in.Hash != nil:
		v.Add("value", "give the value or its hash, not both")
	case in.Value != "":
		if kind, err := keyformat.Parse(s.prefix, in.Value); err == nil && kind.Root {
			v.Add("value", "has the form of a root key of this deployment; import API keys only")
		} else if !keyformat.ValidImported(in.Value) {
			v.Add("value", "must be %d to %d printable ASCII characters, without spaces", keyformat.MinImportedLen, keyformat.MaxImportedLen)
		} else {
			d := keyformat.Hash(in.Value)
			h = d[:]
		}
	case in.Hash != nil:
		if in.Hash.Algorithm != "sha256" {
			v.Add("hash.algorithm", "must be sha256")
		}
		d, err := hex.DecodeString(in.Hash.Digest)
		if err != nil || len(d) != 32 {
			v.Add("hash.digest", "must be 64 hexadecimal characters: the SHA-256 digest of the value")
		}
		h = d
	default:
		v.Add("value", "is required, or hash: the key's existing value")
	}
	if in.CreatedAt != nil && in.CreatedAt.After(now) {
		v.Add("createdAt", "must not be in the future")
	}
	if err := v.Err(); err != nil {
		return importItem{}, err
	}
	d, err := s.draftKey(c, w, in.CreateKeyInput, now)
	if err != nil {
		return importItem{}, err
	}
	k := d.k
	k.Recoverable = false
	if in.CreatedAt != nil {
		k.CreatedAt = in.CreatedAt.UTC().Truncate(time.Microsecond)
	}
	if in.Value != "" {
		// A value of keyplane's own format shows as a created one does; another shows its end only,
		// since where its random part starts is not known.
		if _, err := keyformat.Parse(s.prefix, in.Value); err == nil {
			k.Prefix = s.prefix + "_" + k.KeyType.Short() + "_" + string(k.Environment) + "_"
			k.Start = keyformat.Start(s.prefix, in.Value)
		}
		k.End = keyformat.End(in.Value)
	}
	return importItem{d: d, hash: h, field: valueField(in)}, nil
}

func valueField(in *ImportKeyInput) string {
	if in.Value == "" {
		return "hash.digest"
	}
	return "value"
}

func invalidItem(field, format string, args ...any) error {
	return &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid " + field,
		Details: []keyplane.FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// itemError is err as an item's answer when it is the contract's error; any other error (the store
// failed) fails the whole call, and is returned.
func itemError(err error) (*keyplane.Error, error) {
	var kerr *keyplane.Error
	if errors.As(err, &kerr) {
		return kerr, nil
	}
	return nil, err
}
