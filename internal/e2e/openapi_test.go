package e2e

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/api/openapitest"
)

// Every answer of every test goes through one validating transport, so that the suite as a whole can
// tell which documented operations it never exercised.
var (
	oasOnce      sync.Once
	oasValidator *openapitest.Validator
	oasErr       error
	transportsMu sync.Mutex
	transports   []*openapitest.Transport
)

func validating(t *testing.T) http.RoundTripper {
	oasOnce.Do(func() { oasValidator, oasErr = openapitest.New(api.OpenAPI()) })
	if oasErr != nil {
		t.Fatalf("OpenAPI document: %v", oasErr)
	}
	tr := openapitest.NewTransport(oasValidator, nil)
	transportsMu.Lock()
	transports = append(transports, tr)
	transportsMu.Unlock()
	t.Cleanup(func() {
		for _, e := range tr.Errors() {
			t.Errorf("answer does not match the OpenAPI document: %s", e)
		}
	})
	return leaks(t).recording(tr)
}

// TestMain fails the run when the whole suite ran but left a documented operation untested.
func TestMain(m *testing.M) {
	code := m.Run()
	if s := leakSummary(); s != "" {
		fmt.Fprintln(os.Stderr, s)
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 && !openapitest.Filtered(os.Args[1:]) && oasValidator != nil {
		transportsMu.Lock()
		missing := oasValidator.Unexercised(nil, transports...)
		transportsMu.Unlock()
		if len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: documented operations no end-to-end test exercised: %v\n", missing)
			code = 1
		}
	}
	os.Exit(code)
}
