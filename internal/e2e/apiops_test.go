package e2e

import (
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/internal/api"
)

// apiOp is one operation of the OpenAPI document, which internal/api builds from its table of
// operations. The security tests enumerate operations from it rather than from a list of their own,
// so that an operation added to the API is attacked without anyone remembering to add it here.
type apiOp struct {
	method, path, id string
	// access is who the document says may call it: see opAccess.
	access opAccess
	// workspaced operations act on one workspace, which a root key names in X-Workspace-Id.
	workspaced bool
	// status is the documented success status.
	status int
	// params are the path's parameters, in order.
	params []string
}

type opAccess int

const (
	accessPublic     opAccess = iota // no credential
	accessManagement                 // admin root key or workspace secret key
	accessVerify                     // root key with the verify scope
	accessForward                    // a verify root key in X-Keyplane-Root-Key
)

func (a opAccess) String() string {
	return [...]string{"public", "management", "verification", "forward auth"}[a]
}

var pathParamRE = regexp.MustCompile(`\{([^}]+)\}`)

// documentedOps reads every operation of the served OpenAPI document, sorted by id.
func documentedOps(t *testing.T) []apiOp {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string              `json:"operationId"`
			Security    []map[string][]any  `json:"security"`
			Parameters  []map[string]any    `json:"parameters"`
			Responses   map[string]struct{} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	var ops []apiOp
	for path, methods := range doc.Paths {
		for method, o := range methods {
			op := apiOp{method: strings.ToUpper(method), path: path, id: o.OperationID}
			schemes := map[string]bool{}
			for _, req := range o.Security {
				for name := range req {
					schemes[name] = true
				}
			}
			switch {
			case len(schemes) == 0:
				op.access = accessPublic
			case len(schemes) == 2 && schemes["rootKey"] && schemes["workspaceKey"]:
				op.access = accessManagement
			case len(schemes) == 1 && schemes["rootKey"]:
				op.access = accessVerify
			case len(schemes) == 1 && schemes["proxyRootKey"]:
				op.access = accessForward
			default:
				// A new kind of credential needs its own expectations in these tests.
				t.Fatalf("%s: security schemes %v are unknown to the security tests", op.id, schemes)
			}
			for _, p := range o.Parameters {
				if p["$ref"] == "#/components/parameters/X-Workspace-Id" {
					op.workspaced = true
				}
			}
			for code := range o.Responses {
				if n, err := strconv.Atoi(code); err == nil && n >= 200 && n < 300 && (op.status == 0 || n < op.status) {
					op.status = n
				}
			}
			for _, m := range pathParamRE.FindAllStringSubmatch(path, -1) {
				op.params = append(op.params, m[1])
			}
			if op.id == "" || op.status == 0 {
				t.Fatalf("%s %s: no operationId or no success answer in the document", op.method, path)
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].id < ops[j].id })
	return ops
}

// fill returns the op's path with its parameters replaced by values.
func (op apiOp) fill(values map[string]string) string {
	return pathParamRE.ReplaceAllStringFunc(op.path, func(m string) string {
		v, ok := values[m[1:len(m)-1]]
		if !ok {
			return m
		}
		return v
	})
}

func (op apiOp) String() string { return op.id + " (" + op.method + " " + op.path + ")" }
