// Package openapitest checks HTTP answers against keyplane's OpenAPI document, so that tests notice the
// moment the server and its description drift apart: an answer whose status the document does not list
// for the operation fails, and so does a body its schema refuses.
//
// The document is loaded whole as one JSON Schema resource (draft 2020-12, the dialect of OpenAPI 3.1),
// so that "$ref": "#/components/schemas/X" inside a response schema resolves against it, and each
// response schema is compiled by its JSON pointer into the document.
package openapitest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// docURL names the document inside the compiler; nothing is ever fetched from it.
const docURL = "https://openapi.keyplane.invalid/openapi.json"

// unroutedKey is the document's extension listing the answers to requests outside its paths (an
// unknown path, a method a path does not have): OpenAPI has no place of its own for them.
const unroutedKey = "x-unrouted-responses"

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Validator checks answers against one OpenAPI document. Every response schema is compiled by New, so
// a Validator is immutable afterwards and safe for concurrent use.
type Validator struct {
	paths    []*pathItem
	ops      []string
	unrouted map[string]*response
}

type pathItem struct {
	template string
	segments []string
	ops      map[string]*operation // by upper-case method
}

type operation struct {
	key       string // "GET /v1/api-keys/{id}"
	responses map[string]*response
}

type response struct {
	where   string                        // JSON pointer of the response, for messages
	content map[string]*jsonschema.Schema // by media type; empty: the answer has no body
}

// New parses an OpenAPI 3.1 document and compiles every response schema in it.
func New(doc []byte) (*Validator, error) {
	parsed, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("openapitest: the document is not JSON: %w", err)
	}
	root, ok := parsed.(map[string]any)
	if !ok {
		return nil, errors.New("openapitest: the document is not a JSON object")
	}
	if v, _ := root["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		return nil, fmt.Errorf("openapitest: openapi is %q, want 3.1.x", root["openapi"])
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Formats are only annotations in 2020-12 by default; the document's date-time and email are
	// promises, so hold the server to them.
	c.AssertFormat()
	if err := c.AddResource(docURL, parsed); err != nil {
		return nil, fmt.Errorf("openapitest: %w", err)
	}
	l := &loader{root: root, c: c}

	v := &Validator{}
	paths, _ := root["paths"].(map[string]any)
	if len(paths) == 0 {
		return nil, errors.New("openapitest: the document has no paths")
	}
	for template, raw := range paths {
		item, ok := raw.(map[string]any)
		if !ok || !strings.HasPrefix(template, "/") {
			return nil, fmt.Errorf("openapitest: path %q is not a path item", template)
		}
		p := &pathItem{template: template, segments: strings.Split(template, "/")[1:], ops: map[string]*operation{}}
		for _, m := range methods {
			rawOp, ok := item[m]
			if !ok {
				continue
			}
			key := strings.ToUpper(m) + " " + template
			op, _ := rawOp.(map[string]any)
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				return nil, fmt.Errorf("openapitest: %s has no responses", key)
			}
			o := &operation{key: key, responses: map[string]*response{}}
			for status, r := range responses {
				if !validStatusKey(status) {
					return nil, fmt.Errorf("openapitest: %s: response %q: name every status (or a range such as 4XX), never default", key, status)
				}
				ptr := []string{"paths", template, m, "responses", status}
				if o.responses[status], err = l.response(ptr, r); err != nil {
					return nil, fmt.Errorf("openapitest: %s %s: %w", key, status, err)
				}
			}
			p.ops[strings.ToUpper(m)] = o
			v.ops = append(v.ops, key)
		}
		v.paths = append(v.paths, p)
	}
	if extra, ok := root[unroutedKey].(map[string]any); ok {
		v.unrouted = map[string]*response{}
		for status, r := range extra {
			if !validStatusKey(status) {
				return nil, fmt.Errorf("openapitest: %s: %q is not a status", unroutedKey, status)
			}
			if v.unrouted[status], err = l.response([]string{unroutedKey, status}, r); err != nil {
				return nil, fmt.Errorf("openapitest: %s %s: %w", unroutedKey, status, err)
			}
		}
	}
	sort.Strings(v.ops)
	// The most specific template first, so that the first match is the one the server routes to.
	sort.Slice(v.paths, func(i, j int) bool { return moreSpecific(v.paths[i].segments, v.paths[j].segments) })
	return v, nil
}

func validStatusKey(s string) bool {
	if len(s) != 3 {
		return false
	}
	if s[1:] == "XX" {
		return s[0] >= '1' && s[0] <= '5'
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 100 && n <= 599
}

// moreSpecific orders templates the way net/http's mux chooses between them: at the first segment
// where they differ in kind, a literal beats a {wildcard}; otherwise the longer or smaller one first,
// only to make the order total.
func moreSpecific(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		wa, wb := isWildcard(a[i]), isWildcard(b[i])
		if wa != wb {
			return wb
		}
	}
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return strings.Join(a, "/") < strings.Join(b, "/")
}

func isWildcard(seg string) bool { return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") }

// loader turns a response object of the document into compiled schemas.
type loader struct {
	root map[string]any
	c    *jsonschema.Compiler
}

func (l *loader) response(ptr []string, raw any) (*response, error) {
	// A response may be a $ref to components/responses: follow it, and compile the schema where it
	// lives so that every operation sharing it shares one compiled schema.
	for range 8 {
		obj, ok := raw.(map[string]any)
		if !ok {
			return nil, errors.New("not a response object")
		}
		target, isRef := obj["$ref"].(string)
		if !isRef {
			break
		}
		if !strings.HasPrefix(target, "#/") {
			return nil, fmt.Errorf("$ref %q: only references into the document are supported", target)
		}
		ptr = strings.Split(target[2:], "/")
		for i := range ptr {
			ptr[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(ptr[i])
		}
		if raw = lookup(l.root, ptr); raw == nil {
			return nil, fmt.Errorf("$ref %q points at nothing", target)
		}
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New("not a response object")
	}
	if _, isRef := obj["$ref"]; isRef {
		return nil, errors.New("too many $ref hops")
	}
	r := &response{where: pointer(ptr), content: map[string]*jsonschema.Schema{}}
	content, _ := obj["content"].(map[string]any)
	for mt, media := range content {
		m, _ := media.(map[string]any)
		if _, ok := m["schema"]; !ok {
			return nil, fmt.Errorf("content %s has no schema", mt)
		}
		s, err := l.c.Compile(docURL + "#" + pointer(append(slices.Clip(ptr), "content", mt, "schema")))
		if err != nil {
			return nil, fmt.Errorf("content %s: %w", mt, err)
		}
		r.content[mt] = s
	}
	return r, nil
}

func lookup(v any, ptr []string) any {
	for _, tok := range ptr {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[tok]
	}
	return v
}

// pointer writes tokens as a JSON pointer (RFC 6901) fit for a URL fragment: "~" and "/" escaped per
// the RFC, then each token percent-encoded, since paths hold "{" and "}" and media types hold "/".
func pointer(tokens []string) string {
	var b strings.Builder
	esc := strings.NewReplacer("~", "~0", "/", "~1")
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(esc.Replace(t)))
	}
	return b.String()
}

// Operations lists every documented operation as "METHOD /template", sorted.
func (v *Validator) Operations() []string { return slices.Clone(v.ops) }

// match finds the path item whose template matches a concrete path, literal segments first.
func (v *Validator) match(path string) *pathItem {
	segs := strings.Split(path, "/")[1:]
	for _, p := range v.paths {
		if len(p.segments) != len(segs) {
			continue
		}
		ok := true
		for i, s := range p.segments {
			if isWildcard(s) {
				ok = segs[i] != ""
			} else {
				ok = s == segs[i]
			}
			if !ok {
				break
			}
		}
		if ok {
			return p
		}
	}
	return nil
}

// Check validates one answer: the operation must exist for method and path (a query string is
// ignored), document status, and its schema for contentType must accept body. A 404 to a path outside
// the document, or a 405 to a method a path lacks, is checked against the document's
// x-unrouted-responses; any other answer to those is an error.
func (v *Validator) Check(method, path string, status int, contentType string, body []byte) error {
	_, err := v.check(method, path, status, contentType, body)
	return err
}

// check is Check that also names the operation it matched ("" when none did).
func (v *Validator) check(method, path string, status int, contentType string, body []byte) (string, error) {
	path, _, _ = strings.Cut(path, "?")
	method = strings.ToUpper(method)
	// net/http's mux answers HEAD with the GET handler and no body.
	head := method == http.MethodHead
	if head {
		method = http.MethodGet
	}
	p := v.match(path)
	if p == nil {
		if r := v.unroutedResponse(status); r != nil && status == http.StatusNotFound {
			if err := r.validate(contentType, body, head); err != nil {
				return "", fmt.Errorf("%s %s (no such path) answered %d: %w", method, path, status, err)
			}
			return "", nil
		}
		return "", fmt.Errorf("%s %s answered %d: the document has no path matching %s", method, path, status, path)
	}
	op := p.ops[method]
	if op == nil {
		if r := v.unroutedResponse(status); r != nil && status == http.StatusMethodNotAllowed {
			if err := r.validate(contentType, body, head); err != nil {
				return "", fmt.Errorf("%s %s (no such method on %s) answered %d: %w", method, path, p.template, status, err)
			}
			return "", nil
		}
		return "", fmt.Errorf("%s %s answered %d: the document has no %s operation on %s", method, path, status, method, p.template)
	}
	key := op.key
	if head {
		key = "HEAD " + p.template
	}
	r := op.responses[strconv.Itoa(status)]
	if r == nil {
		r = op.responses[strconv.Itoa(status/100)+"XX"]
	}
	if r == nil {
		documented := make([]string, 0, len(op.responses))
		for s := range op.responses {
			documented = append(documented, s)
		}
		sort.Strings(documented)
		return key, fmt.Errorf("%s (%s) answered %d, which the document does not list (it lists %s)",
			op.key, path, status, strings.Join(documented, ", "))
	}
	if err := r.validate(contentType, body, head); err != nil {
		return key, fmt.Errorf("%s (%s) answered %d: %w", op.key, path, status, err)
	}
	return key, nil
}

// unroutedResponse is the documented answer to a request the server routes nowhere: 404 for an unknown
// path, 405 for a method the path lacks.
func (v *Validator) unroutedResponse(status int) *response { return v.unrouted[strconv.Itoa(status)] }

func (r *response) validate(contentType string, body []byte, head bool) error {
	if head {
		return nil
	}
	if len(r.content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return fmt.Errorf("the document (%s) says no body, got %d bytes", r.where, len(body))
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("Content-Type %q: %w", contentType, err)
	}
	s := r.content[mt]
	if s == nil {
		have := make([]string, 0, len(r.content))
		for k := range r.content {
			have = append(have, k)
		}
		sort.Strings(have)
		return fmt.Errorf("Content-Type %s is not documented (%s has %s)", mt, r.where, strings.Join(have, ", "))
	}
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		// A text answer (the usage export's CSV) is checked as the string its schema describes.
		if err := s.Validate(string(body)); err != nil {
			return fmt.Errorf("the %s body does not match %s: %w", mt, r.where, err)
		}
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the body is not JSON: %w: %.200q", err, body)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("the body does not match %s: %w\nbody: %.2000s", r.where, err, body)
	}
	return nil
}

// Transport is an http.RoundTripper that checks every answer of the API against a Validator on its
// way to the caller, recording what failed and which operations were exercised. Requests outside the
// API (dashboard pages, /metrics) pass unchecked: the API is every documented path and all of /v1.
// It is safe for concurrent use.
type Transport struct {
	v    *Validator
	base http.RoundTripper

	mu   sync.Mutex
	errs []string
	seen map[string]int
}

// NewTransport wraps base (http.DefaultTransport when nil).
func NewTransport(v *Validator, base http.RoundTripper) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Transport{v: v, base: base, seen: map[string]int{}}
}

// RoundTrip sends req through the wrapped transport, then reads the answer's body to check it and
// gives the caller an identical, unread body.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || !t.inScope(req.URL.Path) {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("openapitest: reading the answer to %s %s: %w", req.Method, req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	key, err := t.v.check(req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	t.mu.Lock()
	defer t.mu.Unlock()
	if key != "" {
		t.seen[key]++
	}
	if err != nil {
		t.errs = append(t.errs, err.Error())
	}
	return resp, nil
}

func (t *Transport) inScope(path string) bool {
	return path == "/v1" || strings.HasPrefix(path, "/v1/") || t.v.match(path) != nil
}

// Errors returns every failed check so far, in the order the answers arrived.
func (t *Transport) Errors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.errs)
}

// Seen returns how many answers each operation ("METHOD /template") has had, whether or not they
// passed; HEAD requests count as "HEAD /template".
func (t *Transport) Seen() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.seen)
}

// Unexercised returns, sorted, the document's operations that none of the transports saw, leaving
// out those in except: for a test suite that must call every operation it is meant to cover.
func (v *Validator) Unexercised(except map[string]bool, transports ...*Transport) []string {
	seen := map[string]bool{}
	for _, t := range transports {
		for op := range t.Seen() {
			seen[op] = true
		}
	}
	var missing []string
	for _, op := range v.ops {
		if !seen[op] && !except[op] {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	return missing
}

// Filtered reports whether the test binary's arguments (os.Args[1:]) chose a subset of the tests
// with -run or -skip: then some operations go uncalled on purpose.
func Filtered(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "-test.run=") || strings.HasPrefix(a, "-test.skip=") {
			return true
		}
	}
	return false
}
