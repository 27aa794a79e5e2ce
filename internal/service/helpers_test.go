package service_test

import (
	"context"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/webhook"
)

// shop makes the workspace most tests work in, Shop, as the system.
func shop(t *testing.T, svc *service.Service) *keyplane.Workspace {
	t.Helper()
	w, err := svc.CreateWorkspace(context.Background(), keyplane.System("test"), service.WorkspaceInput{Name: "Shop", Slug: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// openShopWithOrders opens a service on driver d whose catalog holds orders:read, with Shop made.
func openShopWithOrders(t *testing.T, d string) (*service.Service, *keyplane.Workspace) {
	t.Helper()
	svc, _ := servicetest.Open(t, d, service.Options{Catalog: servicetest.Catalog(t, []string{"orders:read"}, nil)})
	return svc, shop(t, svc)
}

// localWebhooks lets endpoints point at plain-HTTP test servers on loopback; the guard fails the
// test if a webhook tries to leave the machine.
func localWebhooks(t *testing.T) service.WebhookOptions {
	return service.WebhookOptions{Policy: webhook.URLPolicy{AllowPrivate: true, AllowHTTP: true}, Guard: kptest.Guard(t)}
}
