// Package routemux is a ServeMux that remembers its patterns, in the order they were registered.
// The API and the dashboard each register theirs from a route table; their tests compare the mux's
// patterns with the table (and generate the isolation and CSRF tests from it), so that a route
// registered any other way fails them.
package routemux

import (
	"net/http"
	"slices"
)

// Mux is an http.ServeMux that keeps the patterns registered on it.
type Mux struct {
	*http.ServeMux
	patterns []string
}

// New returns an empty Mux.
func New() *Mux { return &Mux{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern, as http.ServeMux does, and remembers the pattern.
func (m *Mux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers h for pattern, as http.ServeMux does, and remembers the pattern.
func (m *Mux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Patterns returns the registered patterns, in order.
func (m *Mux) Patterns() []string { return slices.Clone(m.patterns) }
