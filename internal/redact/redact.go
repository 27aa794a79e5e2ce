// Package redact takes credentials out of text that keyplane writes for others to read: the access
// log's path, the request log's path, an error message that names what the caller sent. A caller who
// puts a key value where an id, a path or a field name goes (GET /v1/api-keys/kp_sk_live_…, say) must
// not find it in the server's log, nor have it shown to every reader of the workspace's request log.
package redact

import (
	"regexp"
	"strings"
)

// Marker replaces the secret part of what Secrets takes out.
const Marker = "[redacted]"

// credential matches a key value of any deployment prefix ({prefix}_{sk|pk}_{live|test}_ or
// {prefix}_root_, then 32 random and 6 checksum base62 characters) and a webhook signing secret
// (whsec_ and the base64 of 32 bytes), and a portal token (kp_portal_ and the base64url of 32 bytes:
// a portal link's, in the path of GET /portal/{token}, or a portal session's), of 20 characters or
// more, so that a token cut short is still taken out. The checksum is not checked: a value with a
// typo in it is still all but the whole secret.
var credential = regexp.MustCompile(`[a-z][a-z0-9]{0,15}_(?:root|[sp]k_(?:live|test))_[0-9A-Za-z]{38}|whsec_[A-Za-z0-9+/]{40,}={0,2}|kp_portal_[A-Za-z0-9_-]{20,}`)

// Secrets returns s with every key value, webhook signing secret and portal token in it cut to what
// is public about it (the key object shows the prefix, type and environment; every signing secret
// starts with whsec_, every portal token with kp_portal_) followed by Marker.
func Secrets(s string) string {
	// Every credential holds "_": most paths and messages are returned after one byte scan, which
	// matters on the verification path, whose every request is logged.
	if strings.IndexByte(s, '_') < 0 || !maybe(s) {
		return s
	}
	return credential.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "whsec_") {
			return "whsec_" + Marker
		}
		if strings.HasPrefix(m, portalPrefix) {
			return portalPrefix + Marker
		}
		return m[:len(m)-38] + Marker
	})
}

// portalPrefix starts every portal token (internal/service, PortalTokenPrefix).
const portalPrefix = "kp_portal_"

func maybe(s string) bool {
	return strings.Contains(s, "k_live_") || strings.Contains(s, "k_test_") || strings.Contains(s, "_root_") || strings.Contains(s, "whsec_") ||
		strings.Contains(s, portalPrefix)
}
