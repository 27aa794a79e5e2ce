package routemux

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// TestPatterns: the mux routes as http.ServeMux does and lists what was registered, in order, by
// either method; the list it returns is a copy.
func TestPatterns(t *testing.T) {
	m := New()
	m.HandleFunc("GET /b", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) })
	m.Handle("POST /a/{id}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(202) }))
	want := []string{"GET /b", "POST /a/{id}"}
	got := m.Patterns()
	if !slices.Equal(got, want) {
		t.Fatalf("patterns %v, want %v", got, want)
	}
	got[0] = "changed"
	if m.Patterns()[0] != "GET /b" {
		t.Fatal("Patterns handed out the mux's own slice")
	}
	for path, code := range map[string]int{"/b": 201, "/a/7": 202} {
		method := "GET"
		if code == 202 {
			method = "POST"
		}
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		if rec.Code != code {
			t.Errorf("%s %s: %d, want %d", method, path, rec.Code, code)
		}
	}
}
