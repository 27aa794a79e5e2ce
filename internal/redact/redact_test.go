package redact

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/internal/keyformat"
)

func TestSecrets(t *testing.T) {
	key := keyformat.Generate("kp", "sk", "live")
	pk := keyformat.Generate("acme2", "pk", "test")
	root := keyformat.GenerateRoot("kp")
	whsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	typo := key[:20] + "!" + key[21:] // no longer base62 at 20: not a key's shape
	portal := "kp_portal_" + base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef01234567\xfb\xef\xbe\xff\xff\xffab"))
	for _, c := range []struct{ in, want string }{
		{"/v1/verify", "/v1/verify"},
		{"/v1/api-keys/apk_01M8V2X4BA1VEAF4SX69WEW9YP", "/v1/api-keys/apk_01M8V2X4BA1VEAF4SX69WEW9YP"},
		{"/v1/api-keys/" + key, "/v1/api-keys/kp_sk_live_" + Marker},
		{"/v1/api-keys/" + key + "/rotate", "/v1/api-keys/kp_sk_live_" + Marker + "/rotate"},
		{`invalid permissions: "` + pk + `" is not in the catalog`, `invalid permissions: "acme2_pk_test_` + Marker + `" is not in the catalog`},
		{root + "," + key, "kp_root_" + Marker + ",kp_sk_live_" + Marker},
		{"invalid " + whsec + ": is not a field", "invalid whsec_" + Marker + ": is not a field"},
		{"kp_sk_live_short", "kp_sk_live_short"},
		{typo, typo},
		{"sk_live_ with no prefix", "sk_live_ with no prefix"},
		// Portal tokens: a link's path, a cookie, a token cut short; its base64url holds - and _.
		{"/portal/" + portal, "/portal/kp_portal_" + Marker},
		{"GET /portal/" + portal + "?x=1 303", "GET /portal/kp_portal_" + Marker + "?x=1 303"},
		{"kp_portal=" + portal + "; Path=/", "kp_portal=kp_portal_" + Marker + "; Path=/"},
		{"/portal/" + portal[:30], "/portal/kp_portal_" + Marker},
		{"/portal/kp_portal_short", "/portal/kp_portal_short"},
	} {
		if !strings.ContainsAny(portal[len("kp_portal_"):], "-") || !strings.Contains(portal[len("kp_portal_"):], "_") {
			t.Fatalf("the test's portal token %q lacks - or _", portal)
		}
		if got := Secrets(c.in); got != c.want {
			t.Errorf("Secrets(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestPortalTokenShape: the service's tokens are what Secrets takes out, whole.
func TestPortalTokenShape(t *testing.T) {
	portal := "kp_portal_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	if len(portal) != 53 || Secrets(portal) != "kp_portal_"+Marker {
		t.Fatalf("Secrets(%q) = %q", portal, Secrets(portal))
	}
}

func BenchmarkSecretsVerifyPath(b *testing.B) {
	for b.Loop() {
		Secrets("/v1/verify")
	}
}
