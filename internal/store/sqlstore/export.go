package sqlstore

import (
	"context"
	"errors"

	"github.com/keyplane/keyplane"
)

// ExportUsage: stage 2.
func (db *DB) ExportUsage(ctx context.Context, workspaceID string, f keyplane.ExportFilter, fn func(*keyplane.UsageRow) error) error {
	return errors.New("export usage: not implemented yet")
}
