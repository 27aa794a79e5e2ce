package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/internal/masterkey"
)

// TestMasterKeyRotation: recoverable keys and webhook secrets stored under the old master key reveal
// the same after `keyplane master-key rotate`, whose re-sealing leaves nothing for the old key; a
// second run has nothing to do. On both databases, with the key in the data dir.
func TestMasterKeyRotation(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		env := map[string]string{"KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true"}
		n := start(t, driver, env)
		ws := n.workspace("rotate-master", nil)
		var values []string
		var ids []string
		for range 3 {
			k := n.key(ws, map[string]any{"name": "recoverable", "keyType": "secret", "recoverable": true})
			ids, values = append(ids, k["id"].(string)), append(values, k["keyValue"].(string))
		}
		hook := n.webhook(ws, map[string]any{"url": "http://127.0.0.1:9/hook", "eventTypes": []string{"*"}})
		oldKey, err := os.ReadFile(filepath.Join(n.dataDir, "master.key"))
		if err != nil {
			t.Fatal(err)
		}
		n.stop()
		n.stop = nil

		out, err := run(t, n.dataDir, n.dbURL, "", "master-key", "rotate")
		if err != nil || !strings.Contains(out, "re-sealed 3 key values and 1 webhook secrets") {
			t.Fatalf("master-key rotate: %v\n%s", err, out)
		}
		newKey, _ := os.ReadFile(filepath.Join(n.dataDir, "master.key"))
		prevKey, _ := os.ReadFile(filepath.Join(n.dataDir, "master.key.previous"))
		if string(newKey) == string(oldKey) || string(prevKey) != string(oldKey) {
			t.Fatal("the key files were not rotated")
		}
		// Nothing is sealed with the old key any more: without it, everything still opens.
		if err := os.Remove(filepath.Join(n.dataDir, "master.key.previous")); err != nil {
			t.Fatal(err)
		}
		n.serve(env)
		for i, id := range ids {
			d := n.must(200, req{method: "POST", path: "/v1/api-keys/" + id + "/reveal", cred: n.admin, ws: ws}).data()
			if d["keyValue"] != values[i] {
				t.Errorf("key %s reveals %v after the rotation", id, d["keyValue"])
			}
		}
		d := n.must(200, req{method: "POST", path: "/v1/webhooks/" + hook["id"].(string) + "/reveal-secret", cred: n.admin, ws: ws}).data()
		if d["secret"] != hook["secret"] {
			t.Errorf("the webhook secret after the rotation: %v", d["secret"])
		}
		if out, err := run(t, n.dataDir, n.dbURL, "", "audit", "verify"); err != nil || !strings.Contains(out, "ok    operator") {
			t.Errorf("audit verify after the rotation (which is audited in the operator's chain): %v\n%s", err, out)
		}
		n.stop()
		n.stop = nil
		// Again: a new key, and this time the values sealed with the previous one are re-sealed.
		out, err = run(t, n.dataDir, n.dbURL, "", "master-key", "rotate")
		if err != nil || !strings.Contains(out, "re-sealed 3 key values and 1 webhook secrets") {
			t.Fatalf("second rotation: %v\n%s", err, out)
		}
		n.serve(env)
		if d := n.must(200, req{method: "POST", path: "/v1/api-keys/" + ids[0] + "/reveal", cred: n.admin, ws: ws}).data(); d["keyValue"] != values[0] {
			t.Errorf("after the second rotation: %v", d["keyValue"])
		}
	})
}

// TestMasterKeyRotationCutShort: a `keyplane master-key rotate` killed after it wrote the new key
// files but before it re-sealed the values (here, the files rotated by hand as the command's first
// step does) is run again, as an operator would. The second run finishes the first rotation before it
// begins its own: the values still sealed with the first key are re-sealed while that key is still
// in the previous key file, instead of being left sealed with a key no file holds any more.
func TestMasterKeyRotationCutShort(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		env := map[string]string{"KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true"}
		n := start(t, driver, env)
		ws := n.workspace("rotate-cut-short", nil)
		k := n.key(ws, map[string]any{"name": "recoverable", "keyType": "secret", "recoverable": true})
		hook := n.webhook(ws, map[string]any{"url": "http://127.0.0.1:9/hook", "eventTypes": []string{"*"}})
		n.stop()
		n.stop = nil

		if _, _, err := masterkey.Rotate(n.dataDir); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, n.dataDir, n.dbURL, "", "master-key", "rotate")
		if err != nil || !strings.Contains(out, "finished the rotation before: re-sealed 1 key values and 1 webhook secrets") {
			t.Fatalf("master-key rotate after one cut short: %v\n%s", err, out)
		}
		// Everything is sealed with the newest key: without the previous one, everything opens.
		if err := os.Remove(filepath.Join(n.dataDir, "master.key.previous")); err != nil {
			t.Fatal(err)
		}
		n.serve(env)
		if d := n.must(200, req{method: "POST", path: "/v1/api-keys/" + k["id"].(string) + "/reveal", cred: n.admin, ws: ws}).data(); d["keyValue"] != k["keyValue"] {
			t.Errorf("the key reveals %v after the rotations", d["keyValue"])
		}
		if d := n.must(200, req{method: "POST", path: "/v1/webhooks/" + hook["id"].(string) + "/reveal-secret", cred: n.admin, ws: ws}).data(); d["secret"] != hook["secret"] {
			t.Errorf("the webhook secret after the rotations: %v", d["secret"])
		}
	})
}
