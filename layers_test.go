package keyplane_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/keyplane/keyplane"

// goList runs `go list` with a template over patterns and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	out, err := exec.Command(gobin, append([]string{"list"}, args...)...).Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func isStore(path string) bool {
	return path == module+"/internal/store" || strings.HasPrefix(path, module+"/internal/store/")
}

// TestWebLayersStayOffTheStore holds the line between the web layers and the store: the REST API
// and the dashboard ask the service, which keeps the rules, and never the store behind its back.
// Neither their code nor their tests import internal/store or a package under it (the tests build
// the stores they serve on through internal/service/servicetest, which names each thing they do to a
// store), and nothing their code depends on brings in a driver or the SQL: the store's interface
// reaches them only through the service and the verifier, which take one.
func TestWebLayersStayOffTheStore(t *testing.T) {
	web := []string{module + "/internal/api/...", module + "/internal/dashboard/..."}

	// Direct imports, of the code and of the tests (in the package and in package _test), apart.
	// internal/service is listed too, as the case that must be found in both: it owns the store, and
	// its tests open stores, so a check that does not flag it would flag nothing.
	const format = `{{.ImportPath}}|{{join .Imports " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}`
	listed := map[string]bool{}
	for _, line := range goList(t, append([]string{"-f", format, module + "/internal/service"}, web...)...) {
		parts := strings.Split(line, "|")
		if len(parts) != 3 {
			t.Fatalf("go list printed %q, not path|imports|test imports", line)
		}
		pkg := parts[0]
		listed[pkg] = true
		stores := func(imports string) []string {
			var bad []string
			for _, imp := range strings.Fields(imports) {
				if isStore(imp) {
					bad = append(bad, imp)
				}
			}
			return bad
		}
		code, tests := stores(parts[1]), stores(parts[2])
		if pkg == module+"/internal/service" {
			if len(code) == 0 || len(tests) == 0 {
				t.Errorf("internal/service (code %v, tests %v) imports no store package by this check: the check is broken", code, tests)
			}
			continue
		}
		if len(code) > 0 {
			t.Errorf("%s imports %s: ask the service instead", pkg, strings.Join(code, ", "))
		}
		if len(tests) > 0 {
			t.Errorf("the tests of %s import %s: go through internal/service/servicetest instead", pkg, strings.Join(tests, ", "))
		}
	}
	for _, pkg := range []string{module + "/internal/api", module + "/internal/dashboard"} {
		if !listed[pkg] {
			t.Errorf("go list did not list %s", pkg)
		}
	}

	// Everything they depend on, however far: no driver, no SQL.
	for _, dep := range goList(t, append([]string{"-deps", "-f", "{{.ImportPath}}"}, web...)...) {
		if isStore(dep) && dep != module+"/internal/store" {
			t.Errorf("the web layers depend on %s: only the service and the verifier know the store, by its interface", dep)
		}
	}
}
