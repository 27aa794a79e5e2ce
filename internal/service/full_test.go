package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// fullStore is a store on a full disk: every transaction is rolled back, as the drivers report it.
type fullStore struct{ store.Store }

func (fullStore) InTx(context.Context, string, func(store.Tx) error) error {
	return fmt.Errorf("commit: %w: database or disk is full", store.ErrFull)
}

// TestFullDiskIsUnavailable: a change refused because the store is out of disk space is the
// contract's unavailable, with a message that says so, for the API and the dashboard alike, which
// know nothing of the store's errors; the store's own error stays in the chain and in the log.
func TestFullDiskIsUnavailable(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			st := storetest.Open(t, d)
			var logs bytes.Buffer
			svc := servicetest.New(t, fullStore{st}, service.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

			err := svc.Audit(ctx, keyplane.System("test"), store.OperatorChain, keyplane.AuditRecord{Action: "test.full", Target: keyplane.Target{Type: "test"}})
			var e *keyplane.Error
			if !errors.As(err, &e) || e.Code != keyplane.CodeUnavailable || !strings.Contains(e.Message, "out of disk space") {
				t.Fatalf("a change on a full disk: %v; want the contract's unavailable, saying the disk is full", err)
			}
			if !errors.Is(err, store.ErrFull) || !strings.Contains(err.Error(), "database or disk is full") {
				t.Errorf("the store's error is lost: %v", err)
			}
			if !strings.Contains(logs.String(), "out of disk space") || !strings.Contains(logs.String(), "database or disk is full") {
				t.Errorf("the operator is not told the disk is full:\n%s", logs.String())
			}

			// Reads, and the health the status pages show, do not go through a transaction.
			if err := svc.Health(ctx); err != nil {
				t.Errorf("Health: %v", err)
			}
			if got := svc.StoreDriver(); got != st.Driver() || got == "" {
				t.Errorf("StoreDriver = %q, want %q", got, st.Driver())
			}
		})
	}
}
