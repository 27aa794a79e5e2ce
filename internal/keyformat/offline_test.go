package keyformat_test

import (
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/internal/keyformat"
)

// The functions docs/secret-scanning.md gives scanners. ValidKeyplaneKey is copied here from the
// page, and TestOfflineChecksumDocumented checks that the page still holds it word for word.

// ValidKeyplaneKey reports whether v has the shape and checksum of a keyplane key of prefix.
func ValidKeyplaneKey(v, prefix string) bool {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `_(?:(?:sk|pk)_(?:live|test)|root)_[0-9A-Za-z]{38}$`)
	if !re.MatchString(v) {
		return false
	}
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	sum, want := crc32.ChecksumIEEE([]byte(v[:len(v)-6])), make([]byte, 6)
	for i := 5; i >= 0; i-- {
		want[i], sum = alphabet[sum%62], sum/62
	}
	return string(want) == v[len(v)-6:]
}

const docPath = "../../docs/secret-scanning.md"

// docBlock returns the page's first fenced block of lang.
func docBlock(t *testing.T, lang string) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```"+lang+"\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("%s holds no %s block", docPath, lang)
	}
	return block
}

// samples are values keyformat generates, of every kind and two prefixes, each with the verdict
// Parse gives, and look-alikes that must fail.
func samples() (good map[string]string, bad map[string]string) {
	good, bad = map[string]string{}, map[string]string{}
	for _, prefix := range []string{"kp", "acme2"} {
		for range 50 {
			for _, v := range []string{keyformat.Generate(prefix, "sk", "live"), keyformat.Generate(prefix, "sk", "test"),
				keyformat.Generate(prefix, "pk", "live"), keyformat.Generate(prefix, "pk", "test"), keyformat.GenerateRoot(prefix)} {
				good[v] = prefix
				b := []byte(v)
				i := len(prefix) + 9 + len(v)%20
				b[i] ^= 1 // still base62, but the checksum fails
				bad[string(b)] = prefix
				last := v[:len(v)-1] + string("01"[(v[len(v)-1]&1)^1]) // another checksum digit
				if last != v {
					bad[last] = prefix
				}
				bad[v[:len(v)-1]] = prefix // one short
				bad[v+"0"] = prefix        // one long
			}
		}
		v := keyformat.Generate(prefix, "sk", "live")
		bad["x"+v] = prefix
		bad[strings.Replace(v, "_sk_", "_xk_", 1)] = prefix
		bad[strings.Replace(v, "_live_", "_prod_", 1)] = prefix
		bad[""] = prefix
	}
	bad[keyformat.Generate("kp", "sk", "live")] = "acme2" // another deployment's key
	for v, p := range bad {
		if _, err := keyformat.Parse(p, v); err == nil {
			delete(bad, v) // a flip that happened to keep the checksum: not a look-alike
		}
	}
	return good, bad
}

func TestOfflineChecksumGo(t *testing.T) {
	good, bad := samples()
	for v, p := range good {
		if !ValidKeyplaneKey(v, p) {
			t.Errorf("%s (prefix %s): refused", v, p)
		}
	}
	for v, p := range bad {
		if ValidKeyplaneKey(v, p) {
			t.Errorf("%q (prefix %s): accepted", v, p)
		}
	}
}

func TestOfflineChecksumDocumented(t *testing.T) {
	src, err := os.ReadFile("offline_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, fn, _ := strings.Cut(string(src), "// ValidKeyplaneKey reports")
	fn, _, _ = strings.Cut(fn, "\n}\n")
	fn = "// ValidKeyplaneKey reports" + fn + "\n}\n"
	if doc := docBlock(t, "go"); doc != fn {
		t.Errorf("docs/secret-scanning.md's Go function differs from the one tested here:\n%s\nwant:\n%s", doc, fn)
	}
	// The page's regular expressions match what the default prefix generates.
	b, _ := os.ReadFile(docPath)
	all := regexp.MustCompile(`(?m)^\\bkp_\(\?:\(\?:sk\|pk\).*\\b$`).FindString(string(b))
	if all == "" {
		t.Fatal("the page's pattern of every key is gone")
	}
	re := regexp.MustCompile(all)
	for _, v := range []string{keyformat.Generate("kp", "sk", "live"), keyformat.Generate("kp", "pk", "test"), keyformat.GenerateRoot("kp")} {
		if !re.MatchString("found: " + v + " here") {
			t.Errorf("%s does not match %s", v, all)
		}
	}
}

func TestOfflineChecksumPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the Python function of docs/secret-scanning.md is not run")
	}
	script := docBlock(t, "python") + `
import sys
for line in sys.stdin:
    prefix, _, value = line.rstrip("\n").partition(" ")
    print("1" if valid_keyplane_key(value, prefix) else "0")
`
	path := filepath.Join(t.TempDir(), "check.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	good, bad := samples()
	var in strings.Builder
	var values []string
	var want []string
	for v, p := range good {
		in.WriteString(p + " " + v + "\n")
		values, want = append(values, v), append(want, "1")
	}
	for v, p := range bad {
		in.WriteString(p + " " + v + "\n")
		values, want = append(values, v), append(want, "0")
	}
	cmd := exec.Command(py, path)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	got := strings.Fields(string(out))
	if len(got) != len(want) {
		t.Fatalf("python3 answered %d lines for %d values", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%q: Python says %s, want %s", values[i], got[i], want[i])
		}
	}
}
