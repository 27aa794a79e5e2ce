package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// TestImportStream: the file is cut into batches of the service's maximum, blank lines skipped,
// CRLF and a last line without its end read, a line over the limit failed alone, and every failure
// reported with its own line number.
func TestImportStream(t *testing.T) {
	var b strings.Builder
	const n = 2500
	for i := 1; i <= n; i++ {
		switch {
		case i == 7:
			b.WriteString("\r\n") // blank
		case i == 1200:
			b.WriteString(`{"name": "` + strings.Repeat("x", maxImportLine+10) + `"}` + "\n")
		case i == n:
			fmt.Fprintf(&b, `{"name": "k%d"}`, i) // no line end
		default:
			fmt.Fprintf(&b, `{"name": "k%d"}`+"\r\n", i)
		}
	}
	var stdout, stderr bytes.Buffer
	r := &importRun{p: &Program{Stdout: &stdout, Stderr: &stderr}}
	var batches []int
	seen := map[string]bool{}
	err := r.stream(context.Background(), strings.NewReader(b.String()), func(items []service.ImportKeyInput) ([]service.ImportResult, error) {
		batches = append(batches, len(items))
		out := make([]service.ImportResult, len(items))
		for i, it := range items {
			out[i].Index = i
			switch {
			case it.Err != nil:
				out[i].Err = it.Err.(*keyplane.Error)
			case it.Name == "k42":
				out[i].Err = keyplane.Errorf(keyplane.CodeInvalidRequest, "refused")
			default:
				if seen[it.Name] {
					t.Errorf("%s sent twice", it.Name)
				}
				seen[it.Name] = true
				out[i].ID = "apk_" + it.Name
			}
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(batches) != "[1000 1000 499]" {
		t.Errorf("batches %v, want [1000 1000 499]", batches)
	}
	if r.imported != n-3 || r.failed != 2 || fmt.Sprint(r.failedLines) != "[42 1200]" {
		t.Errorf("imported %d, failed %d at %v", r.imported, r.failed, r.failedLines)
	}
	if !seen[fmt.Sprintf("k%d", n)] || !seen["k1199"] || !seen["k1201"] {
		t.Error("a line next to the long one, or the last one, was lost")
	}
	for _, want := range []string{"line 42: invalid_request: refused", "line 1200: invalid_request: the line is longer than"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	r.summary()
	if !strings.Contains(stdout.String(), fmt.Sprintf("imported %d keys, 2 failed (lines 42, 1200), in ", n-3)) {
		t.Errorf("summary: %s", stdout.String())
	}
}
