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
// Their code (tests aside: they build stores to serve) imports neither internal/store nor a package
// under it, and nothing they depend on brings in a driver or the SQL: the store's interface reaches
// them only through the service and the verifier, which take one.
func TestWebLayersStayOffTheStore(t *testing.T) {
	web := []string{module + "/internal/api/...", module + "/internal/dashboard/..."}

	// Direct imports. internal/service is listed too, as the case that must be found: it owns the
	// store, so a check that does not flag it would flag nothing.
	listed := map[string]bool{}
	for _, line := range goList(t, append([]string{"-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module + "/internal/service"}, web...)...) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, bad := fields[0], []string{}
		listed[pkg] = true
		for _, imp := range fields[1:] {
			if isStore(imp) {
				bad = append(bad, imp)
			}
		}
		switch {
		case pkg == module+"/internal/service":
			if len(bad) == 0 {
				t.Errorf("internal/service imports no store package by this check: the check is broken")
			}
		case len(bad) > 0:
			t.Errorf("%s imports %s: ask the service instead", pkg, strings.Join(bad, ", "))
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
