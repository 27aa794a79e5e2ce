package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/openapi.json from the route table")

// tablePatterns are the mux patterns of the whole route table, in its order.
func tablePatterns() []string {
	var out []string
	for _, o := range operations() {
		out = append(out, o.patterns()...)
	}
	return out
}

// TestRoutesAreTheTable: the server registers exactly the route table's patterns, each once, and
// nothing else; and each pattern is the one the mux routes its own requests to, so that no other
// registration (of the table or not) shadows it.
func TestRoutesAreTheTable(t *testing.T) {
	s := New(Options{})
	got, want := s.mux.Patterns(), tablePatterns()
	if !slices.Equal(got, want) {
		t.Fatalf("registered patterns differ from the route table's:\n got  %q\n want %q", got, want)
	}
	seen := map[string]bool{}
	wildcard := regexp.MustCompile(`\{[^}]+\}`)
	for _, p := range got {
		if seen[p] {
			t.Errorf("%s is in the table twice", p)
		}
		seen[p] = true
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			// A pattern for any method: a method no operation of the table has.
			method, path = "PUT", p
		}
		path = wildcard.ReplaceAllString(path, "x1")
		if strings.HasSuffix(path, "/") {
			path += "orders/7"
		}
		_, pattern := s.mux.Handler(httptest.NewRequest(method, path, nil))
		if pattern != p {
			t.Errorf("%s %s is routed to %q, want %q", method, path, pattern, p)
		}
	}
	// A path outside the table is no route at all.
	if _, pattern := s.mux.Handler(httptest.NewRequest("GET", "/v1/no-such-thing", nil)); pattern != "" {
		t.Errorf("GET /v1/no-such-thing is routed to %q", pattern)
	}
}

// TestOpenAPIDescribesTheTable: the document's operations are the table's, and every further pattern
// the table registers is one its operation's description covers: the same path, or the paths under
// it, for any method.
func TestOpenAPIDescribesTheTable(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Security    []map[string][]string
		}
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var described []string
	for path, item := range doc.Paths {
		for method := range item {
			described = append(described, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(described)
	var table []string
	for _, o := range operations() {
		table = append(table, o.method+" "+o.path)
		op, ok := doc.Paths[o.path][strings.ToLower(o.method)]
		if !ok {
			continue // reported below
		}
		if op.OperationID != o.id {
			t.Errorf("%s %s: operationId %q, want %q", o.method, o.path, op.OperationID, o.id)
		}
		// The document asks for a credential exactly where the server authenticates one.
		if _, authenticated := o.access.mode(); authenticated != (len(op.Security) > 0 && o.access != forwarded) {
			t.Errorf("%s %s: security %v for access %d", o.method, o.path, op.Security, o.access)
		}
		for _, p := range o.also {
			if strings.Contains(p, " ") || p != o.path && p != o.path+"/" {
				t.Errorf("%s %s also registers %q, which its description does not cover", o.method, o.path, p)
			}
		}
	}
	slices.Sort(table)
	if !slices.Equal(described, table) {
		t.Errorf("the document describes\n %q\nthe table has\n %q", described, table)
	}
}

// goldenOpenAPI is the committed document: what the generator makes, indented for review.
var goldenOpenAPI = filepath.Join("..", "..", "docs", "openapi.json")

// TestOpenAPIGolden: docs/openapi.json is the document the server serves, so that a change of the
// contract shows in review. After a deliberate change:
//
//	go test ./internal/api -run TestOpenAPIGolden -update
func TestOpenAPIGolden(t *testing.T) {
	var want bytes.Buffer
	if err := json.Indent(&want, OpenAPI(), "", "  "); err != nil {
		t.Fatal(err)
	}
	want.WriteByte('\n')
	if *update {
		if err := os.WriteFile(goldenOpenAPI, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(goldenOpenAPI)
	if err != nil {
		t.Fatalf("%v; make it with go test ./internal/api -run TestOpenAPIGolden -update", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(want.String(), "\n")
		line := 0
		for line < len(gl) && line < len(wl) && gl[line] == wl[line] {
			line++
		}
		t.Errorf("docs/openapi.json is not the document the server serves; first difference at line %d:\n"+
			" committed: %s\n generated: %s\nif the change is meant, run go test ./internal/api -run TestOpenAPIGolden -update and review the diff",
			line+1, at(gl, line), at(wl, line))
	}
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of file)"
}

// TestAPIDocNamesEveryOperation: docs/api.md names every operation of the table, as it names them, in
// code: `GET /v1/api-keys`, `GET /v1/workspaces?limit&cursor`, `POST /v1/events` `{type, data?}`;
// and names no operation the table lacks.
func TestAPIDocNamesEveryOperation(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:GET|HEAD|POST|PUT|PATCH|DELETE) /[^`?\\s]*)").FindAllStringSubmatch(string(b), -1) {
		named[m[1]] = true
	}
	table := map[string]bool{}
	for _, o := range operations() {
		op := o.method + " " + o.path
		table[op] = true
		if !named[op] {
			t.Errorf("docs/api.md does not name %s (as `%s`)", op, op)
		}
	}
	for op := range named {
		if !table[op] {
			t.Errorf("docs/api.md names `%s`, which is no operation of the API", op)
		}
	}
}
