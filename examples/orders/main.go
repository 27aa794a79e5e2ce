// Command orders is a tiny orders API protected by keyplane through the Go SDK's middleware: every
// request needs an API key of the platform's customers, GET with the orders:read permission and POST
// with orders:write. The handlers read who is calling from the verification result.
//
// Run keyplane with the example catalog, make a root key with the verify scope, then this:
//
//	go run ./cmd/keyplane serve --config examples/keyplane.json
//	go run ./cmd/keyplane root-keys create --name orders-api --scopes verify
//	KEYPLANE_URL=http://127.0.0.1:8080 KEYPLANE_VERIFY_KEY=kp_root_… go run ./examples/orders
//	curl -H "Authorization: Bearer kp_sk_test_…" http://127.0.0.1:9090/orders
//
// With KEYPLANE_ADMIN_KEY (a root key with the admin scope) and KEYPLANE_WORKSPACE_ID also set, it
// first creates a test key that may read orders and prints its value once, to try the API with.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/keyplane/keyplane/client"
)

func main() {
	if err := run(context.Background(), os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	base, verifyKey := getenv("KEYPLANE_URL"), getenv("KEYPLANE_VERIFY_KEY")
	if base == "" || verifyKey == "" {
		return errors.New("set KEYPLANE_URL (such as http://127.0.0.1:8080) and KEYPLANE_VERIFY_KEY (a root key with the verify scope)")
	}
	addr := getenv("ORDERS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9090"
	}
	if admin, ws := getenv("KEYPLANE_ADMIN_KEY"), getenv("KEYPLANE_WORKSPACE_ID"); admin != "" && ws != "" {
		k, err := client.New(base, admin, client.WithWorkspace(ws)).CreateAPIKey(ctx, client.CreateAPIKeyRequest{
			Name: "orders example", KeyType: client.KeyTypeSecret, Environment: client.EnvTest,
			Permissions: []string{"orders:read"},
		})
		if err != nil {
			return fmt.Errorf("creating a demo key: %w", err)
		}
		fmt.Printf("demo key (shown once, expires %s): %s\n", k.ExpiresAt.Format(time.RFC3339), k.KeyValue)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	v := client.NewVerifier(base, verifyKey)
	srv := &http.Server{Addr: addr, Handler: newAPI(v, log), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Info("orders API listening", "addr", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type order struct {
	ID        int       `json:"id"`
	Item      string    `json:"item"`
	CreatedBy string    `json:"createdBy"` // the API key's id
	CreatedAt time.Time `json:"createdAt"`
}

// store keeps each workspace's orders apart: a key only ever sees its own workspace's.
type store struct {
	mu     sync.Mutex
	next   int
	orders map[string][]order // by workspace id
}

// newAPI is the orders API behind the middleware: reading needs orders:read, placing orders:write.
func newAPI(v *client.Verifier, log *slog.Logger) http.Handler {
	onError := func(r *http.Request, err error) {
		log.Warn("keyplane could not verify a key", "path", r.URL.Path, "err", err)
	}
	read := v.Middleware(client.MiddlewareOptions{Permissions: []string{"orders:read"}, OnError: onError})
	write := v.Middleware(client.MiddlewareOptions{Permissions: []string{"orders:write"}, OnError: onError})
	s := &store{orders: map[string][]order{}}

	mux := http.NewServeMux()
	mux.Handle("GET /orders", read(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := client.FromContext(r.Context())
		s.mu.Lock()
		list := append([]order{}, s.orders[caller.WorkspaceID]...)
		s.mu.Unlock()
		reply(w, http.StatusOK, map[string]any{"orders": list, "keyId": caller.KeyID, "environment": caller.Environment})
	})))
	mux.Handle("POST /orders", write(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := client.FromContext(r.Context())
		var in struct {
			Item string `json:"item"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.Item == "" {
			reply(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request", "message": `send {"item": "…"}`}})
			return
		}
		s.mu.Lock()
		s.next++
		o := order{ID: s.next, Item: in.Item, CreatedBy: caller.KeyID, CreatedAt: time.Now().UTC()}
		s.orders[caller.WorkspaceID] = append(s.orders[caller.WorkspaceID], o)
		s.mu.Unlock()
		reply(w, http.StatusCreated, o)
	})))
	return mux
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
