package leakcheck

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/internal/keyformat"
)

// TestForms: each form a secret could leak in is found, named, and reported without the secret in the
// report; each kind is told by its shape.
func TestForms(t *testing.T) {
	key := keyformat.Generate("kp", "sk", "live")
	root := keyformat.GenerateRoot("kp")
	raw := []byte("0123456789abcdef0123456789abcdef")
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	master := []byte("fedcba9876543210fedcba9876543210")
	const password = "correct horse battery staple"

	c := New()
	c.Secret(Password, "an API key", key)
	c.Secret(Password, "a root key", root)
	c.Secret(Password, "a webhook secret", whsec)
	c.Secret(Password, "a password", password)
	c.Secret(Password, "a short password", "short") // too short to search for: it would be found in any "too short"
	c.MasterKey("the master key", base64.StdEncoding.EncodeToString(master))
	random := key[len(key)-38 : len(key)-6]

	plant := map[string]string{ // place → content
		"a log with the whole key":           "level=DEBUG msg=verify key=" + key + " ok",
		"a log with the key's secret part":   "secret=" + key[len(key)-38:],
		"a log with the key's random part":   "r=" + random + ".",
		"a bytea column written as hex":      `(apk_1,"\x` + hex.EncodeToString([]byte(key)) + `")`,
		"a log with a webhook secret's body": "signing with " + strings.TrimPrefix(whsec, "whsec_"),
		"a database page with the HMAC key":  "\x00\x01" + string(raw) + "\xff",
		"a database page with the master":    "\x00" + string(master),
		"an error body with the password":    `{"error":{"message":"bad password ` + password + `"}}`,
		"the root key beside the API key":    root + key,
		"a clean log":                        "password is too short; key kp_sk_live_AbC4…x9Qz",
	}
	for name, content := range plant {
		c.Text(name, []byte(content))
	}
	found, st := c.Scan()
	for k, n := range map[Kind]int{RootKey: 1, APIKey: 1, Webhook: 1, Password: 1, Master: 1} {
		if st.Kinds[k] != n {
			t.Errorf("%d %s, want %d: %v", st.Kinds[k], k, n, st.Kinds)
		}
	}
	if st.Secrets != 5 || len(st.Places) != len(plant) {
		t.Errorf("searched %d secrets in %d places, want 5 in %d", st.Secrets, len(st.Places), len(plant))
	}
	want := map[string]string{ // place → the secret and form found there
		"a log with the whole key":           "an API key/whole value",
		"a log with the key's secret part":   "an API key/secret part",
		"a log with the key's random part":   "an API key/random part",
		"a bytea column written as hex":      "an API key/random part in hex",
		"a log with a webhook secret's body": "a webhook secret/base64 part",
		"a database page with the HMAC key":  "a webhook secret/decoded HMAC key",
		"a database page with the master":    "the master key/raw bytes",
		"an error body with the password":    "a password/whole value",
	}
	got := map[string][]string{}
	for _, f := range found {
		got[f.Place] = append(got[f.Place], f.Secret.What+"/"+f.Form)
		msg := f.String()
		for _, s := range []string{key[len(key)-38:], random, root[len(root)-38:], strings.TrimPrefix(whsec, "whsec_"), password, string(raw), string(master)} {
			if strings.Contains(msg, s) {
				t.Errorf("the report shows a secret: %s", msg)
			}
		}
		if !strings.Contains(msg, f.Place) || !strings.Contains(msg, "[SECRET]") {
			t.Errorf("the report does not say where: %s", msg)
		}
	}
	for place, w := range want {
		if g := got[place]; len(g) != 1 || g[0] != w {
			t.Errorf("%s: found %v, want %s", place, g, w)
		}
	}
	if g := got["the root key beside the API key"]; len(g) != 2 {
		t.Errorf("two keys side by side: found %v, want both", g)
	}
	if g := got["a clean log"]; len(g) != 0 {
		t.Errorf("a clean log: found %v", g)
	}
}

// TestDataDir: every file of a data dir is searched as raw bytes, but the master key's own files,
// whose keys are searched for elsewhere; a place that cannot be read is an error, not a silence.
func TestDataDir(t *testing.T) {
	dir := t.TempDir()
	master := []byte("fedcba9876543210fedcba9876543210")
	key := keyformat.Generate("kp", "pk", "test")
	files := map[string]string{
		"master.key":          base64.StdEncoding.EncodeToString(master) + "\n",
		"keyplane.db":         "SQLite format 3\x00" + key,
		"keyplane.db-wal":     "\x37\x7f\x06\x82" + string(master),
		"keyplane.db-shm":     "nothing here",
		"backup/old.db":       "\x00" + key[len(key)-38:],
		"master.key.previous": "not base64 at all",
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := New()
	c.Secret(APIKey, "a key", key)
	c.Store(dir, "")
	c.Place("a broken place", func() ([]byte, error) { return nil, errors.New("gone") })
	found, st := c.Scan()
	got := map[string]string{}
	for _, f := range found {
		got[f.Place] = f.Secret.What + "/" + f.Form
	}
	want := map[string]string{
		"data dir file keyplane.db":     "a key/whole value",
		"data dir file keyplane.db-wal": "master key (master.key)/raw bytes",
		"data dir file backup/old.db":   "a key/secret part",
	}
	if len(got) != len(want) {
		t.Errorf("found %v, want %v", got, want)
	}
	for place, w := range want {
		if got[place] != w {
			t.Errorf("%s: found %q, want %q", place, got[place], w)
		}
	}
	// A master key file without a master key is not skipped quietly either: its key is not searched.
	if len(st.ReadErrors) != 2 || !strings.Contains(st.ReadErrors[0].Error(), "master.key.previous") ||
		!strings.Contains(st.ReadErrors[1].Error(), "a broken place") {
		t.Errorf("read errors %v, want the unreadable master key's and the broken place's", st.ReadErrors)
	}
}
