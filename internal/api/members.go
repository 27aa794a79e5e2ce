package api

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/keyplane/keyplane"
)

// encoding/json matches a member to a field case-insensitively and keeps the last of duplicate
// members: {"permissions": [], "PERMISSIONS": ["audit:read"]} sets permissions to what a gateway or
// WAF filtering on the exact name never saw. checkMembers refuses both before the body is decoded: in
// every object, a name given twice; in an object decoded into a struct, a name that is not a field's
// exact name but matches one in another letter case.
//
// It scans the raw body once, without building tokens: a key is compared as the bytes between its
// quotes, and unescaped only when it holds a backslash. Malformed JSON is left to encoding/json, which
// reports it better; checkMembers only reports what it understood.

// shape is what checkMembers knows of the value a type decodes: a struct's field names (exact),
// with the shape of each, or the shape of a slice's or map's elements. A nil *shape accepts any
// member names (it still refuses duplicates).
type shape struct {
	fields map[string]*shape // a struct's JSON names; nil for anything else
	names  []string          // the same names, for the case-insensitive look
	elem   *shape            // slice, array and map values
}

var shapes sync.Map // reflect.Type → *shape

// shapeOf returns the shape of t, built once per type.
func shapeOf(t reflect.Type) *shape {
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s := buildShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, s)
	return s
}

var optionalPrefix = reflect.TypeOf(keyplane.Optional[int]{}).Name()[:len("Optional[")]

func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := building[t]; ok {
		return s // a recursive type: the shape being built
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		if t == reflect.TypeOf(json.RawMessage(nil)) {
			return nil
		}
		s := &shape{}
		building[t] = s
		s.elem = buildShape(t.Elem(), building)
		return s
	case reflect.Struct:
	default:
		return nil
	}
	// keyplane.Optional[T] decodes T itself.
	if t.PkgPath() == reflect.TypeOf(keyplane.Optional[int]{}).PkgPath() && strings.HasPrefix(t.Name(), optionalPrefix) {
		if f, ok := t.FieldByName("Value"); ok {
			return buildShape(f.Type, building)
		}
	}
	// Other types that decode themselves (time.Time, say) take what they take.
	if reflect.PointerTo(t).Implements(reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()) {
		return nil
	}
	s := &shape{fields: map[string]*shape{}}
	building[t] = s
	addFields(s, t, building)
	return s
}

// addFields adds t's JSON members to s, those of embedded structs as encoding/json promotes them.
func addFields(s *shape, t reflect.Type, building map[reflect.Type]*shape) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(s, ft, building)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := s.fields[name]; !dup {
			s.names = append(s.names, name)
		}
		s.fields[name] = buildShape(f.Type, building)
	}
}

// memberScanner walks a JSON body. err is the first refusal; the scan stops at it, or at the first
// byte it does not understand (encoding/json then reports the syntax error).
type memberScanner struct {
	b    []byte
	i    int
	err  error
	bad  bool  // malformed: stop, and leave it to encoding/json
	path []seg // to the value being scanned, spelled out only for an error
}

// checkMembers refuses a duplicate member in any object of body, or a member of a struct-typed object
// that matches a field only in another letter case, naming it with its path (rateLimit.LIMIT).
func checkMembers(body []byte, dst any) error {
	sc := memberScanner{b: body}
	sc.value(shapeOf(reflect.TypeOf(dst)), 0)
	return sc.err
}

func (sc *memberScanner) ws() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\r', '\n':
			sc.i++
		default:
			return
		}
	}
}

// seg is one step of the path to a value: a member's name, or an array element's index.
type seg struct {
	name  string
	index int
	elem  bool
}

// field spells the path out, with name as its last step: keys[2].rateLimit.LIMIT.
func (sc *memberScanner) field(name string) string {
	var b strings.Builder
	step := func(name string) {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if name == "" {
			name = `""`
		}
		b.WriteString(name)
	}
	for _, p := range sc.path {
		if p.elem {
			b.WriteString("[" + strconv.Itoa(p.index) + "]")
		} else {
			step(p.name)
		}
	}
	step(name)
	return b.String()
}

// maxMemberDepth bounds the recursion; encoding/json refuses deeper bodies anyway.
const maxMemberDepth = 10000

func (sc *memberScanner) value(s *shape, depth int) {
	sc.ws()
	if sc.i >= len(sc.b) || depth > maxMemberDepth {
		sc.bad = true
		return
	}
	switch sc.b[sc.i] {
	case '{':
		sc.object(s, depth)
	case '[':
		sc.array(s, depth)
	case '"':
		if _, _, ok := sc.str(); !ok {
			sc.bad = true
		}
	default:
		// A number or a literal: up to the next delimiter.
		for sc.i < len(sc.b) {
			switch sc.b[sc.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return
			}
			sc.i++
		}
	}
}

// str reads a string at sc.i and returns its raw content and whether it holds a backslash.
func (sc *memberScanner) str() (raw []byte, escaped, ok bool) {
	sc.i++ // the opening quote
	start := sc.i
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case '\\':
			escaped = true
			sc.i += 2
			continue
		case '"':
			raw = sc.b[start:sc.i]
			sc.i++
			return raw, escaped, true
		}
		sc.i++
	}
	return nil, false, false
}

func (sc *memberScanner) array(s *shape, depth int) {
	sc.i++ // [
	var elem *shape
	if s != nil {
		elem = s.elem
	}
	sc.ws()
	if sc.i < len(sc.b) && sc.b[sc.i] == ']' {
		sc.i++
		return
	}
	for n := 0; ; n++ {
		sc.path = append(sc.path, seg{index: n, elem: true})
		sc.value(elem, depth+1)
		sc.path = sc.path[:len(sc.path)-1]
		if sc.err != nil || sc.bad {
			return
		}
		if !sc.more(']') {
			return
		}
	}
}

// more reads what follows an array element or an object member: a comma, after which the container
// goes on, or its closing byte, which ends it. Anything else, or the body's end, makes it malformed.
func (sc *memberScanner) more(closing byte) bool {
	sc.ws()
	if sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ',':
			sc.i++
			return true
		case closing:
			sc.i++
			return false
		}
	}
	sc.bad = true
	return false
}

// smallObject is how many names an object's duplicate check keeps in a slice before it takes a map.
const smallObject = 16

func (sc *memberScanner) object(s *shape, depth int) {
	sc.i++ // {
	var small [smallObject]string
	seen := small[:0]
	var many map[string]struct{}
	sc.ws()
	if sc.i < len(sc.b) && sc.b[sc.i] == '}' {
		sc.i++
		return
	}
	for {
		sc.ws()
		if sc.i >= len(sc.b) || sc.b[sc.i] != '"' {
			sc.bad = true
			return
		}
		raw, escaped, ok := sc.str()
		if !ok {
			sc.bad = true
			return
		}
		var name string
		if escaped {
			var un string
			if err := json.Unmarshal(sc.b[sc.i-len(raw)-2:sc.i], &un); err != nil {
				sc.bad = true
				return
			}
			name = un
		} else if len(raw) > 0 {
			// No copy: name is looked up and compared while the body is scanned, never kept.
			name = unsafe.String(&raw[0], len(raw))
		}
		// The duplicate check.
		dup := false
		if many != nil {
			_, dup = many[name]
		} else {
			for _, n := range seen {
				if n == name {
					dup = true
					break
				}
			}
		}
		if dup {
			sc.err = invalid(sc.field(name), "is given more than once: give each member once")
			return
		}
		if many == nil && len(seen) == smallObject {
			many = make(map[string]struct{}, 2*smallObject)
			for _, n := range seen {
				many[n] = struct{}{}
			}
		}
		if many != nil {
			many[name] = struct{}{}
		} else {
			seen = append(seen, name)
		}
		// The field's shape, and the case check.
		var field *shape
		if s != nil && s.fields == nil {
			field = s.elem // a map's values
		}
		if s != nil && s.fields != nil {
			f, exact := s.fields[name]
			if !exact {
				for _, n := range s.names {
					if strings.EqualFold(n, name) {
						sc.err = invalid(sc.field(name), "is not a field of this request: member names are case-sensitive (did you mean %q?)", n)
						return
					}
				}
			}
			field = f
		}
		sc.ws()
		if sc.i >= len(sc.b) || sc.b[sc.i] != ':' {
			sc.bad = true
			return
		}
		sc.i++
		sc.path = append(sc.path, seg{name: name})
		sc.value(field, depth+1)
		sc.path = sc.path[:len(sc.path)-1]
		if sc.err != nil || sc.bad {
			return
		}
		if !sc.more('}') {
			return
		}
	}
}
