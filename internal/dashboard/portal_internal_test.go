package dashboard

import (
	"fmt"
	"testing"
)

// TestInkOn: whatever the brand's accent colour, the text on it reaches WCAG AA's 4.5:1.
func TestInkOn(t *testing.T) {
	worst := 21.0
	for r := 0; r < 256; r += 15 {
		for g := 0; g < 256; g += 15 {
			for b := 0; b < 256; b += 15 {
				bg := fmt.Sprintf("#%02x%02x%02x", r, g, b)
				if c := contrast(bg, inkOn(bg)); c < worst {
					worst = c
				}
			}
		}
	}
	if worst < 4.5 {
		t.Errorf("the worst contrast of text on an accent is %.2f:1, want at least 4.5:1", worst)
	}
	for bg, want := range map[string]string{"#ffffff": "#000000", "#000000": "#ffffff", "#ffcc00": "#000000", "#4f46e5": "#ffffff", "#777777": "#000000"} {
		if got := inkOn(bg); got != want {
			t.Errorf("inkOn(%s) = %s, want %s", bg, got, want)
		}
	}
}

func TestFrameAncestors(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, "'none'"},
		{[]string{"https://platform.example", "http://localhost:8080"}, "https://platform.example http://localhost:8080"},
		{[]string{"https://a.example; script-src *", "javascript:alert(1)", "https://b.example/path", "*"}, "'none'"},
		{[]string{"https://ok.example", "https://x.example 'unsafe-inline'"}, "https://ok.example"},
	} {
		if got := frameAncestors(c.in); got != c.want {
			t.Errorf("frameAncestors(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestActorName(t *testing.T) {
	for _, c := range []struct {
		actor any
		want  string
	}{
		{map[string]any{"type": "portal_user", "id": "ext-123", "name": "Ana"}, "Ana (portal user ext-123)"},
		{map[string]any{"type": "portal_user", "id": "ext-9"}, "Portal user ext-9"},
		{map[string]any{"type": "user", "id": "usr_1", "name": "a@example.com"}, "a@example.com"},
		{nil, ""},
	} {
		if got := actorName(c.actor); got != c.want {
			t.Errorf("actorName(%v) = %q, want %q", c.actor, got, c.want)
		}
	}
}
