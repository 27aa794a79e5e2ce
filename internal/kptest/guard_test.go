package kptest_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestHarnessesGuardWebhooks reads every test file of the module and checks that what runs keyplane
// in process with webhooks is given a guard: each cli.Program has a WebhookGuard, and each
// service.WebhookOptions and webhook.ClientOptions a Guard. Without one, a webhook URL could be
// resolved by DNS or dialled off the machine (internal/webhook's own tests build theirs through
// newClient, which adds one).
func TestHarnessesGuardWebhooks(t *testing.T) {
	need := map[string]string{"cli.Program": "WebhookGuard", "service.WebhookOptions": "Guard", "webhook.ClientOptions": "Guard"}
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	seen := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			name := x.Name + "." + sel.Sel.Name
			field, ok := need[name]
			if !ok {
				return true
			}
			seen[name]++
			for _, e := range lit.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == field {
						return true
					}
				}
			}
			t.Errorf("%s: a %s without %s", fset.Position(lit.Pos()), name, field)
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checked %v", seen)
	// The scan must find the harnesses it guards, or it proves nothing.
	if seen["cli.Program"] < 4 || seen["service.WebhookOptions"] < 4 {
		t.Errorf("found %v: fewer than the known harnesses; is the module root %s?", seen, root)
	}
}
