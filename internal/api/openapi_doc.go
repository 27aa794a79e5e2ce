package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/service"
)

// OpenAPI returns the OpenAPI 3.1 document served at GET /v1/openapi.json, for tests that check the
// server's answers against it. The copy keeps the served bytes immutable.
func OpenAPI() []byte { return bytes.Clone(openAPIDocument()) }

// openAPIDocument is built once: the document depends on nothing but the route table and this file,
// and every request for it gets the same bytes. (A sync.Once rather than a sync.OnceValue variable:
// the table names the handler that serves the document, and a variable's initializer may not lead
// back to itself.)
func openAPIDocument() []byte {
	builtOpenAPI.once.Do(func() {
		b, err := json.Marshal(buildOpenAPI())
		if err != nil {
			panic("openapi: " + err.Error()) // only maps, slices and scalars: cannot fail
		}
		builtOpenAPI.doc = b
	})
	return builtOpenAPI.doc
}

var builtOpenAPI struct {
	once sync.Once
	doc  []byte
}

// schema is a JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1) under construction. Each
// constructor returns a fresh map for the chained setters to fill in; once a schema is placed inside
// another it is never changed, so one may be shared by several parents.
type schema map[string]any

func (s schema) desc(d string) schema       { s["description"] = d; return s }
func (s schema) set(k string, v any) schema { s[k] = v; return s }
func (s schema) example(v any) schema       { s["examples"] = []any{v}; return s }
func (s schema) length(lo, hi int) schema   { return s.set("minLength", lo).set("maxLength", hi) }
func (s schema) def(v any) schema           { s["default"] = v; return s }
func (s schema) pattern(p string) schema    { s["pattern"] = p; return s }
func (s schema) format(f string) schema     { s["format"] = f; return s }
func (s schema) maxLen(n int) schema        { s["maxLength"] = n; return s }
func (s schema) maxItems(n int) schema      { s["maxItems"] = n; return s }
func (s schema) constant(v any) schema      { s["const"] = v; return s }
func (s schema) bounds(lo, hi int64) schema { return s.set("minimum", lo).set("maximum", hi) }

func str() schema      { return schema{"type": "string"} }
func integer() schema  { return schema{"type": "integer"} }
func boolean() schema  { return schema{"type": "boolean"} }
func dateTime() schema { return str().format("date-time") }
func anyJSON() schema  { return schema{} }

func enum[T ~string](values ...T) schema {
	vs := make([]any, len(values))
	for i, v := range values {
		vs[i] = string(v)
	}
	return schema{"type": "string", "enum": vs}
}

func array(items schema) schema { return schema{"type": "array", "items": items} }

func ref(name string) schema { return schema{"$ref": "#/components/schemas/" + name} }

// nullable widens s to also accept null, the OpenAPI 3.1 way: a type list, since the 3.0 "nullable"
// keyword is gone. A $ref cannot carry a type, so it is wrapped in anyOf instead.
func nullable(s schema) schema {
	if _, isRef := s["$ref"]; isRef {
		return schema{"anyOf": []any{s, schema{"type": "null"}}}
	}
	if t, ok := s["type"].(string); ok {
		s["type"] = []any{t, "null"}
	}
	if e, ok := s["enum"].([]any); ok {
		s["enum"] = append(e, nil)
	}
	return s
}

type props map[string]schema

// closed is an object that may hold only props: the server refuses unknown request fields, and the
// answers it fully controls must not grow fields a client has not been told about.
func closed(p props, required ...string) schema {
	s := schema{"type": "object", "properties": p, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// sealed is a closed object whose every field is always sent.
func sealed(p props) schema {
	req := make([]string, 0, len(p))
	for k := range p {
		req = append(req, k)
	}
	sort.Strings(req)
	return closed(p, req...)
}

func object() schema { return schema{"type": "object"} }

// Patterns of ids and key values, as internal/id and internal/keyformat make them.
const crockford26 = "[0-9A-HJKMNP-TV-Z]{26}"

func idOf(prefix string) schema { return str().pattern("^" + prefix + "_" + crockford26 + "$") }

const (
	slugPattern     = `^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`
	keyHeadPattern  = `[a-z][a-z0-9]{0,15}_(?:sk|pk)_(?:live|test)_`
	keyValuePattern = `^` + keyHeadPattern + `[0-9A-Za-z]{38}$`
)

func schemas() map[string]schema {
	keyProps := func() props {
		return props{
			"id":             idOf("apk"),
			"workspaceId":    idOf("ws").desc("The workspace the key belongs to (an addition to the contract's key object)."),
			"name":           str().length(1, keyplane.MaxNameLen),
			"description":    str().maxLen(keyplane.MaxDescriptionLen),
			"keyType":        ref("KeyType"),
			"environment":    ref("Environment"),
			"prefix":         str().pattern("^(?:" + keyHeadPattern + ")?$").desc("Empty for a key imported with a value of another format, or by its digest.").example("kp_sk_live_"),
			"start":          str().pattern("^(?:" + keyHeadPattern + "[0-9A-Za-z]{4})?$").desc("The prefix and the first four random characters, safe to show; empty as prefix is.").example("kp_sk_live_AbC4"),
			"end":            str().pattern("^(?:[!-~]{4})?$").desc("The last four characters of the value; empty for a key imported by its digest.").example("x9Qz"),
			"status":         enum(keyplane.StatusActive, keyplane.StatusDisabled, keyplane.StatusExpired, keyplane.StatusRevoked).desc("Derived: revoked if revoked, else expired if past expiresAt, else disabled if not enabled, else active."),
			"enabled":        boolean(),
			"permissions":    array(str()).maxItems(keyplane.MaxPermissions),
			"ipAllowlist":    array(str()).maxItems(keyplane.MaxIPAllowlist),
			"allowedOrigins": array(str()).maxItems(keyplane.MaxOrigins),
			"meta":           object(),
			"rateLimit":      nullable(ref("RateLimit")),
			"recoverable":    boolean(),
			"expiresAt":      nullable(dateTime()),
			"lastUsedAt":     nullable(dateTime()),
			"createdAt":      dateTime(),
			"updatedAt":      dateTime(),
			"disabledAt":     nullable(dateTime()),
			"revokedAt":      nullable(dateTime()),
			"createdBy":      sealed(props{"type": ref("ActorType"), "id": str()}),
			"rateLimits":     array(ref("NamedRateLimit")).maxItems(keyplane.MaxNamedLimits).desc("Every limit of the key: rateLimit as the one named default (autoApply true) first, then the named ones."),
			"credits":        nullable(ref("Credits")).desc("The key's own balance; null: unlimited (an identity's credits are on the identity)."),
			"identityId":     nullable(idOf("idn")).desc("The identity the key belongs to."),
			"externalId":     nullable(str()).desc("That identity's externalId."),
		}
	}
	withValue := keyProps()
	withValue["keyValue"] = str().pattern(keyValuePattern).desc("The key's value. Shown in full only by the calls that say so.")

	workspaceProps := props{
		"name":              str().length(1, keyplane.MaxNameLen),
		"slug":              str().pattern(slugPattern),
		"maxKeys":           integer().bounds(1, keyplane.MaxMaxKeys).desc("How many keys that are not revoked the workspace may hold."),
		"testKeyTtlSeconds": integer().bounds(keyplane.MinTestKeyTTLSeconds, keyplane.MaxTestKeyTTLSeconds).desc("Default and longest lifetime of a test key."),
		"liveModeEnabled":   boolean().desc("Whether live keys may be created."),
		"leakPolicy": enum(keyplane.LeakRevoke, keyplane.LeakDisable, keyplane.LeakNotify).
			desc("What is done to a secret key of the workspace found leaked (POST /v1/leaks, GitHub's secret scanning)."),
		"branding": nullable(ref("Branding")).desc("The look of the workspace's portal (POST /v1/portal/sessions); null: none. Replaced whole; null clears it."),
	}
	workspace := props{"id": idOf("ws"), "createdAt": dateTime(), "updatedAt": dateTime()}
	for k, v := range workspaceProps {
		workspace[k] = v
	}
	createWorkspace := props{}
	for k, v := range workspaceProps {
		createWorkspace[k] = v
	}
	createWorkspace["maxKeys"] = integer().bounds(1, keyplane.MaxMaxKeys).def(keyplane.DefaultMaxKeys)
	createWorkspace["testKeyTtlSeconds"] = integer().bounds(keyplane.MinTestKeyTTLSeconds, keyplane.MaxTestKeyTTLSeconds).def(keyplane.DefaultTestKeyTTLSeconds)
	createWorkspace["liveModeEnabled"] = boolean().def(true)
	createWorkspace["leakPolicy"] = enum(keyplane.LeakRevoke, keyplane.LeakDisable, keyplane.LeakNotify).def(string(keyplane.DefaultLeakPolicy))

	foundKey := sealed(props{
		"valid": boolean(),
		"code": enum(keyplane.VerifyValid, keyplane.VerifyDisabled, keyplane.VerifyExpired, keyplane.VerifyRevoked, keyplane.VerifyForbidden,
			keyplane.VerifyInsufficientPermissions, keyplane.VerifyRateLimited, keyplane.VerifyUsageExceeded, keyplane.VerifyInvalidSignature),
		"keyId":       idOf("apk"),
		"workspaceId": idOf("ws"),
		"name":        str(),
		"keyType":     ref("KeyType"),
		"environment": ref("Environment"),
		"permissions": array(str()),
		"meta":        object(),
		"expiresAt":   nullable(dateTime()),
	}).desc("A key whose value matched: what it is, whatever the code.")
	foundKey["properties"].(props)["reason"] = str().desc("INVALID_SIGNATURE: why (bad signature, stale timestamp, replay, bad claims).")
	foundKey["properties"].(props)["claims"] = object().desc("POST /v1/verify/jwt: the token's claims, once its signature and claims checked out.")
	// ratelimit is there only for keys with a limit, on requests counted against it.
	foundKey["properties"].(props)["ratelimit"] = sealed(props{
		"limit":     integer().set("minimum", 1),
		"remaining": integer().set("minimum", 0).desc("Requests still allowed at once after this one."),
		"resetAt":   dateTime().desc("When the key is back to its full limit."),
	}).desc("The key's rate limit after this request: present when the key has one and the request was otherwise VALID " +
		"(only those count). RATE_LIMITED when over it.")
	// Usage-based keys: only where they apply.
	foundKey["properties"].(props)["ratelimits"] = array(sealed(props{
		"name":      str().pattern(`^[a-z0-9_.:-]{1,64}$`),
		"limit":     integer().set("minimum", 1),
		"remaining": integer().set("minimum", 0).desc("What the limit still allows at once after this request."),
		"resetAt":   dateTime().desc("When the limit is back to full."),
		"exceeded":  boolean().desc("This limit refused the request (RATE_LIMITED); it is the last one listed."),
	})).desc("Every rate limit the request was counted against, in order: the default one (the key's rateLimit), the auto-applied named " +
		"ones of the key and of its identity, then those the request named. Present when any applied and the request was otherwise " +
		"VALID; the limits before a refusal counted the request.")
	foundKey["properties"].(props)["credits"] = sealed(props{
		"remaining": integer().set("minimum", 0).desc("The key's credits left after this request (its identity's when the key has none " +
			"of its own), as the answering node sees them."),
	}).desc("Present when the key or its identity has credits.")
	foundKey["properties"].(props)["identity"] = sealed(props{
		"id":         idOf("idn"),
		"externalId": str().length(1, keyplane.MaxExternalIDLen),
		"meta":       object(),
	}).desc("The key's identity, when it has one.")
	// valid is true exactly when code is VALID.
	foundKey["if"] = schema{"properties": props{"code": schema{"const": string(keyplane.VerifyValid)}}}
	foundKey["then"] = schema{"properties": props{"valid": schema{"const": true}}}
	foundKey["else"] = schema{"properties": props{"valid": schema{"const": false}}}

	codes := make([]keyplane.Code, 0, len(statusOf))
	for c := range statusOf {
		codes = append(codes, c)
	}
	slices.Sort(codes)

	return map[string]schema{
		"KeyType":     enum(keyplane.KeyTypeSecret, keyplane.KeyTypePublishable),
		"Environment": enum(keyplane.EnvLive, keyplane.EnvTest),
		"ActorType":   enum(keyplane.ActorUser, keyplane.ActorAPIKey, keyplane.ActorRootKey, keyplane.ActorSystem, keyplane.ActorPortalUser),
		"Role":        enum(keyplane.RoleOwner, keyplane.RoleAdmin, keyplane.RoleDeveloper, keyplane.RoleViewer),
		"RateLimit": sealed(props{
			"limit":    integer().bounds(1, keyplane.MaxRateLimit),
			"windowMs": integer().bounds(keyplane.MinRateWindowMs, keyplane.MaxRateWindowMs),
		}).desc("At most limit verifications per windowMs milliseconds."),

		"Error": closed(props{
			"code":      enum(codes...),
			"message":   str().desc("For people: what went wrong and, where it helps, what to do."),
			"requestId": str().desc("The X-Request-Id of the request; the server's logs hold it."),
			"details": array(sealed(props{"field": str(), "message": str()})).
				desc("invalid_request only: each invalid field and why."),
		}, "code", "message", "requestId"),
		"ErrorEnvelope": sealed(props{"success": boolean().constant(false), "error": ref("Error")}),

		"Health":   sealed(props{"status": str().constant("ok")}),
		"Ready":    sealed(props{"status": str().constant("ready")}),
		"NotReady": sealed(props{"status": str().constant("unavailable"), "store": str().constant("unreachable")}),
		"Status": sealed(props{
			"status":        enum("ok", "degraded").desc("degraded when the store does not answer."),
			"version":       str(),
			"uptimeSeconds": integer().set("minimum", 0),
			"store":         sealed(props{"driver": str().example("sqlite"), "ok": boolean()}),
		}),
		"OpenAPIDocument": object().set("required", []string{"openapi", "info", "paths"}).
			set("properties", props{"openapi": str().constant("3.1.0"), "info": object(), "paths": object()}),
		"CatalogEntry": sealed(props{"name": str(), "description": str()}),

		"Workspace": sealed(workspace),
		"Branding": closed(props{
			"name":        str().length(1, 100).desc("The platform's name in the portal; absent: the workspace's name."),
			"accentColor": str().pattern("^#[0-9a-fA-F]{6}$").desc("#rrggbb; answered in lower case."),
			"logoUrl":     str().maxLen(2048).pattern("^https://").format("uri").desc("https only: the portal is framed by https pages."),
		}).desc("Each field absent or null: none, and the portal falls back to the workspace's name and keyplane's look."),

		// Portal sessions.
		"CreatePortalSessionRequest": closed(props{
			"user": closed(props{
				"id":    str().length(1, 255).desc("The platform's own id of its user; the audit trail names them by it (actor portal_user)."),
				"email": str().format("email").maxLen(254),
				"name":  str().maxLen(255),
			}, "id"),
			"role":             enum(keyplane.RoleAdmin, keyplane.RoleDeveloper, keyplane.RoleViewer).desc("The role's permissions within the portal's pages; owner is 400."),
			"returnUrl":        str().maxLen(2048).format("uri").desc("http or https: the portal's way back to the platform."),
			"expiresInSeconds": integer().bounds(60, 3600).def(300).desc("How long the link may be opened (once)."),
		}, "user", "role"),
		"PortalLink": sealed(props{
			"url":       str().format("uri").desc("<public-url>/portal/<token>: works once, before expiresAt. A secret: hand it to the user's browser only."),
			"expiresAt": dateTime(),
		}),

		// Leaked keys.
		"LeakReportRequest": closed(props{
			"keys":   array(str().length(1, 1024)).set("minItems", 1).maxItems(keyplane.MaxLeakBatch).desc("Values found; any string, looked up only when it is a well-formed key of the deployment."),
			"source": str().maxLen(keyplane.MaxLeakSourceLen).desc("Who found them (your scanner's name)."),
			"url":    str().maxLen(keyplane.MaxLeakURLLen).desc("Where they were found."),
		}, "keys"),
		"LeakResult": closed(props{
			"found":  boolean().desc("A key has this value."),
			"keyId":  idOf("apk").desc("The key, when found."),
			"action": enum(keyplane.LeakRevoked, keyplane.LeakDisabled, keyplane.LeakNotified, keyplane.LeakAlreadyReported, keyplane.LeakNone),
		}, "found", "action"),
		"GitHubScanningBatch": array(schema{"type": "object", "properties": props{
			"token": str(), "type": str(), "url": str(), "source": str(),
		}, "required": []string{"token"}}).maxItems(keyplane.MaxLeakBatch),
		"GitHubScanningLabel": sealed(props{
			"token_hash": str().pattern("^[0-9a-f]{64}$").desc("Hex SHA-256 of the token."),
			"token_type": str().desc("The type GitHub sent."),
			"label":      enum("true_positive", "false_positive"),
		}),

		"CreateWorkspaceRequest": closed(createWorkspace, "name", "slug"),
		"UpdateWorkspaceRequest": closed(workspaceProps).desc("Only the fields given change; operator only."),
		"Member": sealed(props{
			"userId":    idOf("usr"),
			"email":     str().format("email"),
			"role":      ref("Role"),
			"status":    enum(keyplane.MemberActive, keyplane.MemberInvited).desc("invited: no access until the person accepts from their own dashboard session."),
			"createdAt": dateTime(),
		}),
		"AddMemberRequest": closed(props{"email": str().format("email").maxLen(254), "role": ref("Role")}, "email", "role"),

		"ApiKey":          sealed(keyProps()),
		"ApiKeyWithValue": sealed(withValue),
		"CreateApiKeyRequest": closed(props{
			"name":        str().length(1, keyplane.MaxNameLen),
			"keyType":     ref("KeyType"),
			"environment": ref("Environment").def(string(keyplane.EnvLive)),
			"description": str().maxLen(keyplane.MaxDescriptionLen),
			"permissions": array(str()).maxItems(keyplane.MaxPermissions).desc("Names from GET /v1/permissions."),
			"expiresAt": nullable(dateTime()).desc("Must be in the future. Test keys: omitted means creation + the workspace's " +
				"testKeyTtlSeconds, a later time or null is refused. Live keys: omitted or null means never."),
			"ipAllowlist": array(str()).maxItems(keyplane.MaxIPAllowlist).desc("IPv4/IPv6 addresses or CIDRs; a CIDR with host bits set is refused."),
			"allowedOrigins": array(str()).maxItems(keyplane.MaxOrigins).
				desc("Web origins such as https://shop.example.com; publishable keys only."),
			"meta":        nullable(object()).desc("At most 4096 bytes once compacted; null is {}."),
			"rateLimit":   nullable(ref("RateLimit")),
			"recoverable": boolean().def(false).desc("Also keep the value, sealed, so that it can be revealed. Publishable keys always are."),
			"credits":     nullable(ref("CreditsRequest")).desc("The key's own balance; absent or null: unlimited."),
			"rateLimits": array(ref("NamedRateLimit")).maxItems(keyplane.MaxNamedLimits).desc("Named limits; an entry named default is the key's rateLimit " +
				"(autoApply must be true; not with rateLimit). At most 10 in all, rateLimit included."),
			"externalId": str().length(1, keyplane.MaxExternalIDLen).desc("The key belongs to the identity of this externalId, made on first use. Not with identityId."),
			"identityId": idOf("idn").desc("The key belongs to this identity of the workspace. Not with externalId."),
		}, "name", "keyType"),
		"UpdateApiKeyRequest": closed(props{
			"name":           str().length(1, keyplane.MaxNameLen),
			"description":    nullable(str().maxLen(keyplane.MaxDescriptionLen)).desc("null clears it."),
			"permissions":    nullable(array(str()).maxItems(keyplane.MaxPermissions)).desc("Replaces the list; null clears it."),
			"ipAllowlist":    nullable(array(str()).maxItems(keyplane.MaxIPAllowlist)).desc("Replaces the list; null clears it."),
			"allowedOrigins": nullable(array(str()).maxItems(keyplane.MaxOrigins)).desc("Replaces the list; null clears it. Publishable keys only."),
			"meta":           nullable(object()).desc("Replaces meta; null is {}."),
			"rateLimit":      nullable(ref("RateLimit")).desc("null removes the limit."),
			"expiresAt": nullable(dateTime()).desc("Must be in the future; test keys: at most creation + testKeyTtlSeconds, " +
				"and never null. Live keys: null means never."),
			"enabled": boolean(),
			"credits": nullable(ref("CreditsRequest")).desc("Replaces the key's balance (the epoch moves: credits nodes hold are not given back); null: unlimited. " +
				"To add or take credits, use POST /v1/api-keys/{id}/credits."),
			"rateLimits": nullable(array(ref("NamedRateLimit")).maxItems(keyplane.MaxNamedLimits)).desc("Replaces every limit of the key, rateLimit included " +
				"(as the entry named default) unless rateLimit is given too; null removes them all but rateLimit."),
			"externalId": nullable(str().length(1, keyplane.MaxExternalIDLen)).desc("Moves the key to the identity of this externalId (made on first use); null: to none."),
			"identityId": nullable(idOf("idn")).desc("Moves the key to this identity; null: to none."),
		}).desc("Only the fields given change. keyType and environment cannot change: sending them is refused, naming them."),
		"RotateApiKeyRequest": closed(props{
			"expireOldAfterSeconds": integer().bounds(0, keyplane.MaxRotationGrace).def(0).
				desc("How long the old value keeps working; 0 stops it at once."),
		}),
		"RevealApiKeyRequest": closed(props{}).desc("No fields; the body may be left out."),
		"ImportApiKeysRequest": closed(props{
			"keys": array(ref("ImportApiKeyItem")).set("minItems", 1).maxItems(service.MaxImportBatch),
		}, "keys"),
		"ImportApiKeyItem": closed(props{
			"value": str().length(keyformat.MinImportedLen, keyformat.MaxImportedLen).pattern("^[!-~]+$").
				desc("The key's existing value, of any format: printable ASCII without spaces. Not with hash."),
			"hash": closed(props{"algorithm": str().constant("sha256"), "digest": str().pattern("^[0-9a-fA-F]{64}$")}, "algorithm", "digest").
				desc("The SHA-256 digest of the existing value, when the value itself is not to be sent. Not with value."),
			"createdAt":   nullable(dateTime()).desc("When the other system made the key; not in the future. Absent: the import's time."),
			"name":        str().length(1, keyplane.MaxNameLen),
			"keyType":     str().constant(string(keyplane.KeyTypeSecret)).desc("Imported keys are secret keys; absent means secret."),
			"environment": ref("Environment").def(string(keyplane.EnvLive)),
			"description": str().maxLen(keyplane.MaxDescriptionLen),
			"permissions": array(str()).maxItems(keyplane.MaxPermissions).desc("Names from GET /v1/permissions."),
			"expiresAt": nullable(dateTime()).desc("As at creation, counted from the import: test keys expire at most testKeyTtlSeconds after it, " +
				"and by then when it is omitted."),
			"ipAllowlist":    array(str()).maxItems(keyplane.MaxIPAllowlist),
			"allowedOrigins": array(str()).maxItems(0).desc("Publishable keys only, so always refused here."),
			"meta":           nullable(object()).desc("At most 4096 bytes once compacted; null is {}."),
			"rateLimit":      nullable(ref("RateLimit")),
			"credits":        nullable(ref("CreditsRequest")),
			"rateLimits":     array(ref("NamedRateLimit")).maxItems(keyplane.MaxNamedLimits),
			"externalId":     str().length(1, keyplane.MaxExternalIDLen).desc("The key belongs to the identity of this externalId, made on first use. Not with identityId."),
			"identityId":     idOf("idn").desc("Not with externalId."),
		}, "name").desc("A created key's fields (recoverable excepted: an imported value is stored as its digest only), and exactly one of value and hash."),
		"ImportApiKeysResult": sealed(props{
			"imported": integer().set("minimum", 0),
			"failed":   integer().set("minimum", 0),
			"results": array(closed(props{
				"index": integer().set("minimum", 0).desc("The item's place in keys, from 0."),
				"id":    idOf("apk").desc("The imported key's id."),
				"error": closed(props{
					"code":    enum(codes...),
					"message": str(),
					"details": array(sealed(props{"field": str(), "message": str()})),
				}, "code", "message").desc("Why this item was not imported; the envelope's error without requestId."),
			}, "index")).desc("One per item, in order: id or error."),
		}),
		"RevokedApiKey":  sealed(props{"id": idOf("apk"), "revokedAt": dateTime()}),
		"DeletedApiKey":  sealed(props{"id": idOf("apk"), "deleted": boolean().constant(true)}),
		"RevealedApiKey": sealed(props{"id": idOf("apk"), "keyValue": str().pattern(keyValuePattern)}),

		"AuditEntry": closed(props{
			"redacted": boolean().constant(true).desc("Present for a caller without api_keys:read (developers, viewers, keys): the values of an API key's " +
				"changed fields and an API key actor's name read \"[redacted]\"; GET /v1/audit-logs/verify checks the stored entries."),
			"id":        idOf("aud"),
			"timestamp": dateTime(),
			"action":    str().example("api_key.created"),
			"actor":     sealed(props{"type": ref("ActorType"), "id": str(), "name": str()}),
			"target":    sealed(props{"type": str().example("api_key"), "id": str()}),
			"ip":        str(),
			"userAgent": str(),
			"requestId": str(),
			"changes": object().set("additionalProperties", sealed(props{"from": anyJSON(), "to": anyJSON()})).
				desc("Each changed field's value before and after, as the API shows it."),
			"prevHash": str().pattern("^(?:[0-9a-f]{64})?$").desc("The previous entry's hash; empty for the first entry, and in every entry answered to a caller without api_keys:read."),
			"hash": str().pattern("^(?:[0-9a-f]{64})?$").desc("hex(SHA-256(prevHash + JCS(this entry without hash))); empty in every entry answered to a caller without api_keys:read, " +
				"whose hashes would let it test guesses of the hidden values."),
		}, "id", "timestamp", "action", "actor", "target", "ip", "userAgent", "requestId", "changes", "prevHash", "hash"),
		"AuditVerification": sealed(props{
			"valid":      boolean(),
			"entries":    integer().set("minimum", 0),
			"firstBadId": nullable(idOf("aud")),
		}),

		"VerifyRequest": closed(props{
			"key":         str().desc("The key value to check."),
			"permissions": array(str()).maxItems(keyplane.MaxPermissions).desc("All are required for VALID."),
			"ip":          str().desc("The address the key is used from; needed when the key has an ipAllowlist."),
			"origin":      str().desc("The Origin the key is used from; needed when the key has allowedOrigins."),
			"environment": ref("Environment").desc("The environment the key must belong to."),
			"credits": closed(props{
				"cost": integer().bounds(0, keyplane.MaxCost).def(keyplane.DefaultCreditCost).
					desc("Credits the verification spends when it is otherwise VALID; 0 checks without spending."),
			}).desc("Of the key's credits, and its identity's: both must have the cost left (USAGE_EXCEEDED otherwise, nothing spent)."),
			"rateLimits": array(closed(props{
				"name": str().pattern(`^[a-z0-9_.:-]{1,64}$`).desc("A limit of the key, or else of its identity; an unknown name is 400."),
				"cost": integer().bounds(0, keyplane.MaxCost).def(1).desc("What the request counts against it; 0 checks without counting."),
			}, "name")).maxItems(keyplane.MaxNamedLimits).desc("Named limits to apply besides the auto-applied ones; naming an " +
				"auto-applied one sets its cost."),
			"tags": array(str().maxLen(keyplane.MaxTagLen)).maxItems(keyplane.MaxTags).desc("Stored with the request log entry " +
				"(GET /v1/logs?tag=…); at most 128 bytes each."),
		}, "key"),
		"VerifyNotFound": sealed(props{"valid": boolean().constant(false), "code": str().constant(string(keyplane.VerifyNotFound))}).
			desc("No key has this value: malformed, bad checksum, unknown or permanently deleted."),
		"VerifyKeyFound": foundKey,
		"VerifyAnswer":   schema{"oneOf": []any{ref("VerifyNotFound"), ref("VerifyKeyFound")}},
		"VerifyRefused": sealed(props{
			"valid":  boolean().constant(false),
			"code":   str().constant(string(keyplane.VerifyInvalidSignature)),
			"reason": str(),
		}).desc("The signature or token could not be checked against any key: a malformed token, a disallowed alg, a key that is not recoverable."),
		"SignedAnswer": schema{"oneOf": []any{ref("VerifyNotFound"), ref("VerifyRefused"), ref("VerifyKeyFound")}},
		"VerifySignatureRequest": closed(props{
			"keyId":       idOf("apk").desc("The key that signed; it must be recoverable."),
			"timestamp":   integer().desc("Unix seconds when the request was signed; at most 300 s from now."),
			"signature":   str().desc("hex(HMAC-SHA256(key value, timestamp + \"\\n\" + METHOD + \"\\n\" + path + \"\\n\" + bodySha256))."),
			"method":      str().example("POST"),
			"path":        str().maxLen(8192).example("/orders?expand=items").desc("The request's path with its query, as sent."),
			"bodySha256":  str().pattern("^[0-9a-f]{64}$").desc("The body's SHA-256, lowercase hex."),
			"permissions": array(str()).maxItems(keyplane.MaxPermissions).desc("All are required for VALID."),
			"ip":          str().desc("The address the request came from; needed when the key has an ipAllowlist."),
		}, "keyId", "timestamp", "signature", "method", "path", "bodySha256"),
		"VerifyJWTRequest": closed(props{
			"token":       str().maxLen(16 << 10).desc("A compact JWT: HS256, kid = the key's id, signed with the key's value; exp required, at most 1 h after iat."),
			"permissions": array(str()).maxItems(keyplane.MaxPermissions).desc("All are required for VALID."),
			"ip":          str().desc("The address the token was used from; needed when the key has an ipAllowlist."),
		}, "token"),

		"VerifyCode": enum(keyplane.VerifyCodes...).desc("A verification's outcome."),
		"LogSource": enum(keyplane.LogSources...).
			desc("verify: POST /v1/verify; signature, jwt, auth: the other verification calls; management: a management call made with a workspace key."),
		"RequestLog": sealed(props{
			"id":        idOf("req"),
			"timestamp": dateTime().desc("When the request arrived."),
			"keyId":     idOf("apk"),
			"code": ref("VerifyCode").desc("The verification's outcome. For a management call, the credential's: VALID, " +
				"INSUFFICIENT_PERMISSIONS when refused for a permission it lacks, or why it was refused (DISABLED, EXPIRED, REVOKED, FORBIDDEN)."),
			"source":        ref("LogSource"),
			"method":        str().example("POST"),
			"path":          str().example("/v1/verify").desc("Without the query string."),
			"ip":            str().desc("Verifications: the address the request named (its ip field), else empty. Management calls: the caller's address."),
			"userAgent":     str(),
			"latencyMicros": integer().set("minimum", 0).desc("From the request's arrival to its answer, in microseconds."),
			"identityId":    nullable(idOf("idn")).desc("The key's identity when the request was made; null without one."),
			"creditsSpent":  integer().set("minimum", 0).desc("Credits the verification took from the key or its identity (0 for any other)."),
			"tags":          array(str().maxLen(keyplane.MaxTagLen)).maxItems(keyplane.MaxTags).desc("The verification request's tags; [] without."),
		}),
		"WebhookEndpoint": sealed(webhookProps()),
		"WebhookEndpointWithSecret": func() schema {
			p := webhookProps()
			req := slices.Sorted(maps.Keys(p))
			p["secret"] = str().pattern(`^whsec_[A-Za-z0-9+/]+={0,2}$`).desc("The signing secret: shown on creation, rotation and reveal.")
			p["previousSecretExpiresAt"] = dateTime().desc("After a rotation: until when the previous secret also signs.")
			return closed(p, append(req, "secret")...)
		}(),
		"CreateWebhookRequest": closed(props{
			"url":         str().maxLen(keyplane.MaxWebhookURL).desc("Absolute https:// URL, without credentials; it must not resolve to a private address."),
			"description": str().maxLen(500),
			"eventTypes":  array(str()).desc("At least one event type of GET /v1/event-types, or \"*\"."),
			"enabled":     boolean().def(true),
		}, "url", "eventTypes"),
		"UpdateWebhookRequest": closed(props{
			"url":         str().maxLen(keyplane.MaxWebhookURL),
			"description": nullable(str().maxLen(500)).desc("null clears it."),
			"eventTypes":  array(str()),
			"enabled":     boolean().desc("true clears disabledReason."),
		}),
		"EmptyRequest":       closed(props{}).desc("No fields; the body may be left out."),
		"TestWebhookRequest": closed(props{"eventType": str().desc("The test event's type; webhook.test when absent.")}),
		"WebhookTestResult": sealed(props{
			"statusCode":   nullable(integer()).desc("The endpoint's HTTP status; null when none came."),
			"responseBody": str().desc("The first 4 KiB of the answer."),
			"error":        nullable(str()).desc("Why the attempt failed; null on a 2xx."),
			"durationMs":   integer().set("minimum", 0),
		}),
		"Delivery": sealed(props{
			"id":            idOf("dlv"),
			"eventId":       idOf("evt"),
			"eventType":     str(),
			"attempt":       integer().set("minimum", 1),
			"status":        enum(keyplane.DeliveryPending, keyplane.DeliverySucceeded, keyplane.DeliveryFailed),
			"statusCode":    nullable(integer()),
			"responseBody":  str(),
			"error":         nullable(str()),
			"durationMs":    nullable(integer()),
			"createdAt":     dateTime(),
			"nextAttemptAt": nullable(dateTime()).desc("When a pending attempt is due; null once made."),
		}),
		"DeletedWebhook": sealed(props{"id": idOf("whk"), "deleted": boolean().constant(true)}),
		"SendEventRequest": closed(props{
			"type": str().desc("A custom event type of the deployment's --config file; keyplane's own types are refused."),
			"data": object().desc("The event's payload; {} when absent."),
		}, "type"),
		"SentEvent": sealed(props{
			"id":        idOf("evt"),
			"type":      str(),
			"createdAt": dateTime(),
			"endpoints": integer().set("minimum", 0).desc("How many enabled endpoints it was queued for."),
		}),
		"RecoverWebhookRequest": closed(props{
			"since": dateTime().desc("The window's start: events created at or after it. Within the event retention."),
			"until": dateTime().desc("The window's end, exclusive; now when absent. After since."),
		}, "since"),
		"ResendEventRequest": closed(props{
			"endpointId": idOf("whk").desc("The endpoint to send it to; when absent, every enabled endpoint subscribed to the event's type."),
		}),
		"Queued": sealed(props{"queued": integer().set("minimum", 0).desc("How many attempts were queued.")}),
		"Event":  sealed(eventProps()),
		"EventDetail": sealed(func() props {
			p := eventProps()
			p["endpoints"] = array(sealed(props{
				"endpointId":    idOf("whk"),
				"attempts":      integer().set("minimum", 1),
				"status":        enum(keyplane.DeliveryPending, keyplane.DeliverySucceeded, keyplane.DeliveryFailed).desc("The last attempt's."),
				"lastAttemptAt": dateTime(),
			}))
			return p
		}()),
		"NamedRateLimit": sealed(props{
			"name":      str().pattern(`^[a-z0-9_.:-]{1,64}$`),
			"limit":     integer().bounds(1, keyplane.MaxRateLimit),
			"windowMs":  integer().bounds(keyplane.MinRateWindowMs, keyplane.MaxRateWindowMs),
			"autoApply": boolean().desc("Applies to every verification; otherwise only to those that name it."),
		}).desc("At most limit verifications (or units of cost) per windowMs milliseconds."),
		"Refill": closed(props{
			"interval":  enum(keyplane.RefillDaily, keyplane.RefillMonthly),
			"amount":    integer().bounds(1, keyplane.MaxCredits).desc("What each refill sets the balance to."),
			"refillDay": integer().bounds(1, 31).desc("Monthly only (default 1): the day of the month, clamped to its last day. Absent for daily refills."),
		}, "interval", "amount").desc("Sets the balance to amount at 00:00 UTC of each day it is due; refills missed while no node ran are one refill."),
		"Credits": sealed(props{
			"remaining":    integer().bounds(0, keyplane.MaxCredits),
			"refill":       nullable(ref("Refill")),
			"lastRefillAt": nullable(dateTime()).desc("00:00 UTC of the day of the last refill."),
		}).desc("A balance that verifications spend."),
		"CreditsRequest": closed(props{
			"remaining": integer().bounds(0, keyplane.MaxCredits).desc("Required unless there is a refill: then the balance starts at its amount."),
			"refill":    nullable(ref("Refill")),
		}),
		"CreditsOperation": closed(props{
			"op":    enum(keyplane.CreditSet, keyplane.CreditIncrement, keyplane.CreditDecrement),
			"value": integer().bounds(0, keyplane.MaxCredits),
		}, "op", "value"),
		"Identity": sealed(props{
			"id":         idOf("idn"),
			"externalId": str().length(1, keyplane.MaxExternalIDLen).desc("The platform's own id for the customer; unique in the workspace."),
			"meta":       object(),
			"credits":    nullable(ref("Credits")).desc("Shared by all the identity's keys; null: unlimited."),
			"rateLimits": array(ref("NamedRateLimit")).maxItems(keyplane.MaxNamedLimits).desc("Shared by all the identity's keys."),
			"createdAt":  dateTime(),
			"updatedAt":  dateTime(),
		}),
		"CreateIdentityRequest": closed(props{
			"externalId": str().length(1, keyplane.MaxExternalIDLen),
			"meta":       nullable(object()).desc("At most 4096 bytes once compacted; null is {}."),
			"credits":    nullable(ref("CreditsRequest")).desc("Absent or null: unlimited."),
			"rateLimits": array(ref("NamedRateLimit")).maxItems(keyplane.MaxNamedLimits),
		}, "externalId"),
		"UpdateIdentityRequest": closed(props{
			"externalId": str().length(1, keyplane.MaxExternalIDLen),
			"meta":       nullable(object()).desc("Replaces meta; null is {}."),
			"credits":    nullable(ref("CreditsRequest")).desc("Replaces the balance; null: unlimited."),
			"rateLimits": nullable(array(ref("NamedRateLimit")).maxItems(keyplane.MaxNamedLimits)).desc("Replaces the list; null empties it."),
		}).desc("Only the fields given change."),
		"DeletedIdentity": sealed(props{"id": idOf("idn"), "deleted": boolean().constant(true)}),
		"UsageRow": closed(props{
			"keyId":        idOf("apk").desc("groupBy=key."),
			"identityId":   idOf("idn").desc("groupBy=identity."),
			"externalId":   nullable(str()).desc("The identity's externalId; null for a key without one."),
			"start":        dateTime().desc("The period's first instant: a UTC hour, midnight, or the first of a month."),
			"total":        integer().set("minimum", 0),
			"valid":        integer().set("minimum", 0),
			"creditsSpent": integer().set("minimum", 0),
			"codes": object().set("propertyNames", ref("VerifyCode")).set("additionalProperties", integer().set("minimum", 1)).
				desc("Requests per code; codes without requests are absent."),
		}, "externalId", "start", "total", "valid", "creditsSpent", "codes"),
		"UsageBucket": sealed(props{
			"start": dateTime().desc("The bucket's first instant: a UTC hour or midnight."),
			"total": integer().set("minimum", 0).desc("Requests logged in the bucket."),
			"valid": integer().set("minimum", 0).desc("Of those, VALID ones."),
			"codes": object().set("propertyNames", ref("VerifyCode")).set("additionalProperties", integer().set("minimum", 1)).
				desc("Requests per code; codes without requests are absent, so an empty bucket has {}."),
		}),
	}
}

// webhookProps are the fields of an endpoint as every answer shows it.
func webhookProps() props {
	return props{
		"id":             idOf("whk"),
		"url":            str().desc("Where events are posted."),
		"description":    str(),
		"eventTypes":     array(str()).desc("Event type names, or [\"*\"] for every type."),
		"enabled":        boolean(),
		"disabledReason": nullable(str()).desc("Why keyplane disabled the endpoint (410 Gone, or 5 days of failures); null otherwise."),
		"createdAt":      dateTime(),
		"updatedAt":      dateTime(),
	}
}

type errorResponse struct {
	name   string
	status int
	desc   string
	codes  []keyplane.Code
}

// errorResponses are the error answers, named by the codes they may carry: a response that admits
// only the codes its status can have catches a code answered under the wrong status.
func errorResponses() []errorResponse {
	return []errorResponse{
		{"BadRequest", 400, "The request is malformed or fails validation; details name each field.", []keyplane.Code{keyplane.CodeInvalidRequest}},
		{"Unauthorized", 401, "No credential, or one that is unknown, malformed, disabled, expired, revoked or publishable.", []keyplane.Code{keyplane.CodeUnauthorized}},
		{"Forbidden", 403, "The credential lacks the scope or permission.", []keyplane.Code{keyplane.CodeForbidden}},
		{"ForbiddenOrLiveModeOff", 403, "The credential lacks the permission, or the workspace's live mode is off for a live key.", []keyplane.Code{keyplane.CodeForbidden, keyplane.CodeLiveModeDisabled}},
		{"NotFound", 404, "No such resource in the caller's workspace (or no such route).", []keyplane.Code{keyplane.CodeNotFound}},
		{"MethodNotAllowed", 405, "The path exists but not with this method; Allow lists those it has.", []keyplane.Code{keyplane.CodeMethodNotAllowed}},
		{"KeyLimitReached", 409, "The workspace already holds maxKeys keys that are not revoked.", []keyplane.Code{keyplane.CodeKeyLimitReached}},
		{"KeyNotDeletable", 409, "Only a disabled or revoked key can be deleted permanently.", []keyplane.Code{keyplane.CodeKeyNotDeletable}},
		{"KeyRevoked", 409, "The key is revoked: it cannot change any more.", []keyplane.Code{keyplane.CodeKeyRevoked}},
		{"LastOwner", 409, "The change, removal or departure would leave the workspace without an active owner.", []keyplane.Code{keyplane.CodeLastOwner}},
		{"IdentityInUse", 409, "Keys still belong to the identity (revoked ones count).", []keyplane.Code{keyplane.CodeIdentityInUse}},
		{"IdentityExists", 409, "Another identity of the workspace has this externalId.", []keyplane.Code{keyplane.CodeIdentityExists}},
		{"DeliveryNotRetryable", 409, "Only a failed attempt is retried: this one succeeded or is still pending.", []keyplane.Code{keyplane.CodeDeliveryNotRetryable}},
		{"IdempotencyKeyInUse", 409, "The first request with this Idempotency-Key is still running; retry later.", []keyplane.Code{keyplane.CodeIdempotencyKeyInUse}},
		{"IdempotencyKeyReused", 422, "This Idempotency-Key was sent before with another method, path or body.", []keyplane.Code{keyplane.CodeIdempotencyKeyReused}},
		{"EventPayloadDropped", 410, "The event is older than the event retention: its payload was dropped and it cannot be sent again.", []keyplane.Code{keyplane.CodeEventPayloadDropped}},
		{"PayloadTooLarge", 413, "The body is over the limit: 1 MiB for management calls, 64 KiB for verification.", []keyplane.Code{keyplane.CodePayloadTooLarge}},
		{"RateLimited", 429, "Too many management calls from this credential or address; retry after Retry-After seconds.", []keyplane.Code{keyplane.CodeRateLimited}},
		{"UnsupportedMediaType", 415, "The body is not application/json.", []keyplane.Code{keyplane.CodeUnsupportedMediaType}},
		{"Internal", 500, "A bug; the request id finds it in the server's logs.", []keyplane.Code{keyplane.CodeInternal}},
		{"Unavailable", 503, "The key store cannot be reached right now; retry after Retry-After seconds.", []keyplane.Code{keyplane.CodeUnavailable}},
	}
}

func jsonContent(s schema) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": s}}
}

func requestIDHeader() map[string]any {
	return map[string]any{"X-Request-Id": map[string]any{"$ref": "#/components/headers/X-Request-Id"}}
}

// errorAnswer is the response of the error answers named (see errorResponses): of one, or of several
// of one status, which then admits the codes of each and says each one's description.
func errorAnswer(names ...string) map[string]any {
	var e errorResponse
	for _, name := range names {
		i := slices.IndexFunc(errorResponses(), func(e errorResponse) bool { return e.name == name })
		if i < 0 {
			panic("openapi: no error response " + name)
		}
		one := errorResponses()[i]
		if e.name == "" {
			e = one
			continue
		}
		e.desc += " Or: " + one.desc
		e.codes = append(slices.Clone(e.codes), one.codes...)
	}
	s := schema{"allOf": []any{
		ref("ErrorEnvelope"),
		schema{"properties": props{"error": schema{"properties": props{"code": enum(e.codes...)}}}},
	}}
	r := map[string]any{"description": e.desc, "headers": requestIDHeader(), "content": jsonContent(s)}
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
		r["headers"] = map[string]any{
			"X-Request-Id": requestIDHeader()["X-Request-Id"],
			"Retry-After":  map[string]any{"description": "Seconds to wait before retrying.", "schema": integer()},
		}
	}
	if e.status == http.StatusMethodNotAllowed {
		r["headers"] = map[string]any{
			"X-Request-Id": requestIDHeader()["X-Request-Id"],
			"Allow":        map[string]any{"description": "The methods the path has.", "schema": str()},
		}
	}
	return r
}

// responseComponents are the error answers that operations refer to; the others (405, which only
// requests outside the paths get) are written out where they are used, so that the document holds no
// component that nothing refers to.
func responseComponents(ops []operation) map[string]any {
	out := map[string]any{}
	for _, o := range ops {
		for _, names := range o.errorAnswers() {
			if len(names) == 1 {
				out[names[0]] = errorAnswer(names[0])
			}
		}
	}
	return out
}

func errorStatus(name string) int {
	for _, e := range errorResponses() {
		if e.name == name {
			return e.status
		}
	}
	panic("openapi: no error response " + name)
}

func (a access) errors() []string {
	switch a {
	case verification:
		return []string{"Unauthorized", "Forbidden", "Unavailable", "Internal"}
	case forwarded:
		return []string{"Unauthorized", "Forbidden", "RateLimited", "Unavailable", "Internal"}
	case management:
		return []string{"Unauthorized", "Forbidden", "RateLimited", "Unavailable", "Internal"}
	case workspaced:
		// 400: a root key without X-Workspace-Id; 404: an X-Workspace-Id that is no workspace id.
		return []string{"BadRequest", "Unauthorized", "Forbidden", "NotFound", "RateLimited", "Unavailable", "Internal"}
	}
	// Panics are recovered into a 500 on every route.
	return []string{"Internal"}
}

func (a access) security() []any {
	switch a {
	case management, workspaced:
		return []any{map[string]any{"rootKey": []any{}}, map[string]any{"workspaceKey": []any{}}}
	case verification:
		return []any{map[string]any{"rootKey": []any{}}}
	case forwarded:
		return []any{map[string]any{"proxyRootKey": []any{}}}
	}
	return []any{}
}

func param(name, in, desc string, s schema) map[string]any {
	return map[string]any{"name": name, "in": in, "description": desc, "schema": s}
}

func paramRef(name string) map[string]any {
	return map[string]any{"$ref": "#/components/parameters/" + name}
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func (o operation) build() map[string]any {
	op := map[string]any{
		"operationId": o.id,
		"summary":     o.summary,
		"tags":        []string{o.tag},
		"security":    o.access.security(),
	}
	if o.description != "" {
		op["description"] = o.description
	}
	var params []map[string]any
	for _, m := range pathParam.FindAllStringSubmatch(o.path, -1) {
		p := param(m[1], "path", "The resource's id; anything that is not one of this workspace's answers 404.", str())
		p["required"] = true
		params = append(params, p)
	}
	params = append(params, o.query...)
	if o.access == workspaced {
		params = append(params, paramRef("X-Workspace-Id"))
	}
	if o.idempotent() {
		params = append(params, paramRef("Idempotency-Key"))
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if o.body != "" {
		op["requestBody"] = map[string]any{"required": !o.bodyOptional, "content": jsonContent(ref(o.body))}
	}

	responses := map[string]any{}
	body := o.data
	switch {
	case o.raw:
	case o.list:
		body = sealed(props{"success": boolean().constant(true), "data": array(o.data), "nextCursor": nullable(str())}).
			desc("A page; nextCursor is null on the last one.")
	default:
		body = sealed(props{"success": boolean().constant(true), "data": o.data})
	}
	headers := requestIDHeader()
	if o.idempotent() {
		headers[replayedHeader] = map[string]any{"$ref": "#/components/headers/" + replayedHeader}
	}
	responses[strconv.Itoa(o.status)] = map[string]any{"description": http.StatusText(o.status), "headers": headers, "content": jsonContent(body)}
	for status, r := range o.extra {
		responses[strconv.Itoa(status)] = r
	}
	for status, names := range o.errorAnswers() {
		if len(names) > 1 {
			responses[strconv.Itoa(status)] = errorAnswer(names...)
			continue
		}
		responses[strconv.Itoa(status)] = map[string]any{"$ref": "#/components/responses/" + names[0]}
	}
	op["responses"] = responses
	return op
}

// errorAnswers are the error responses o lists, by status. An operation's own errors win over
// authentication's for the same status (createApiKey's 403). An operation that takes an
// Idempotency-Key adds the key's answers (400, 409, 422) to its own: a status both have gets one
// answer admitting the codes of both.
func (o operation) errorAnswers() map[int][]string {
	byStatus := map[int][]string{}
	for _, name := range o.access.errors() {
		byStatus[errorStatus(name)] = []string{name}
	}
	for _, name := range o.errors {
		byStatus[errorStatus(name)] = []string{name}
	}
	if o.idempotent() {
		for _, name := range []string{"BadRequest", "IdempotencyKeyInUse", "IdempotencyKeyReused"} {
			if st := errorStatus(name); !slices.Contains(byStatus[st], name) {
				byStatus[st] = append(byStatus[st], name)
			}
		}
	}
	return byStatus
}

func buildOpenAPI() map[string]any {
	paths := map[string]map[string]any{}
	ids := map[string]bool{}
	ops := operations()
	for _, o := range ops {
		if ids[o.id] {
			panic(fmt.Sprintf("openapi: operationId %s twice", o.id))
		}
		ids[o.id] = true
		if paths[o.path] == nil {
			paths[o.path] = map[string]any{}
		}
		paths[o.path][strings.ToLower(o.method)] = o.build()
	}
	return map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
		"info": map[string]any{
			"title":   "keyplane",
			"version": "1",
			"description": "keyplane manages API keys for platforms: workspaces create secret and publishable keys for test and live use, " +
				"and services verify them. Every /v1 answer but this document is enveloped: {success: true, data} (lists add nextCursor) " +
				"or {success: false, error: {code, message, requestId, details?}}. The full reference is docs/api.md.",
		},
		"servers": []any{map[string]any{"url": "/"}},
		"tags": []any{
			map[string]any{"name": "health", "description": "Liveness, readiness, status and this document; no credential."},
			map[string]any{"name": "catalog", "description": "The deployment's permissions and event types."},
			map[string]any{"name": "workspaces", "description": "Tenants and their settings; mostly operator only."},
			map[string]any{"name": "api-keys", "description": "A workspace's keys: lifecycle, rotation, reveal."},
			map[string]any{"name": "audit", "description": "The tamper-evident audit trail."},
			map[string]any{"name": "identities", "description": "The platform's customers: their keys share their credits and rate limits."},
			map[string]any{"name": "logs", "description": "The request log of key uses, and usage counted from it."},
			map[string]any{"name": "webhooks", "description": "Endpoints that receive the workspace's events, signed per Standard Webhooks, and their deliveries."},
			map[string]any{"name": "verification", "description": "The hot path: is this key good?"},
			map[string]any{"name": "leaks", "description": "Key values found in public: reports, and GitHub's secret scanning partner endpoint."},
			map[string]any{"name": "portal", "description": "One-time links into a workspace's portal, for the platform's own users."},
		},
		"paths": paths,
		// The server answers requests outside paths too; OpenAPI has no place for that, so it is said here.
		"x-unrouted-responses": map[string]any{
			"404": errorAnswer("NotFound"),
			"405": errorAnswer("MethodNotAllowed"),
		},
		"components": map[string]any{
			"schemas":   schemas(),
			"responses": responseComponents(ops),
			"parameters": map[string]any{
				"limit":  param("limit", "query", "Page size.", integer().bounds(1, 100).def(50)),
				"cursor": param("cursor", "query", "The nextCursor of the previous page.", str().maxLen(200)),
				"X-Workspace-Id": param("X-Workspace-Id", "header",
					"The workspace a root key acts on; required for root keys, ignored for workspace keys (they act on their own).", idOf("ws")),
				"Idempotency-Key": param("Idempotency-Key", "header",
					"Makes a retry safe: the same key, sent again by the same credential (and, for a root key, the same X-Workspace-Id) with the same method, path and body "+
						"within 24 h, answers the first answer again, with Idempotent-Replayed: true, and does nothing. Another method, path or body: 422 idempotency_key_reused; "+
						"while the first is still running: 409 idempotency_key_in_use. A first answer of 5xx or 429 is not kept: a retry runs the request again. "+
						"1 to 255 printable ASCII characters; a random UUID per logical request is typical.",
					str().length(1, 255).pattern(`^[\x20-\x7E]+$`)),
			},
			"headers": map[string]any{
				replayedHeader: map[string]any{"description": "true when the answer is the replay of the first answer to this Idempotency-Key; absent otherwise.",
					"schema": enum("true")},
				"X-Request-Id": map[string]any{"description": "The request's id: the caller's own if it is sane (≤ 64 of [A-Za-z0-9._-]) and not a credential, else a new req_ id.", "schema": str()},
			},
			"securitySchemes": map[string]any{
				"rootKey": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "kp_root_…",
					"description": "An operator root key, made by `keyplane root-keys create`. Scope admin: every management call, on any " +
						"workspace (named by X-Workspace-Id). Scope verify: the verification calls."},
				"proxyRootKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-Keyplane-Root-Key",
					"description": "Forward auth: the proxy sends a root key with the verify scope here, and the client's own headers beside it."},
				"workspaceKey": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "kp_sk_…",
					"description": "A workspace's own secret key holding keyplane's permissions (api_keys:read, api_keys:write, audit:read, …): " +
						"its own workspace only. Publishable keys are refused (401)."},
			},
		},
	}
}

// eventProps are an event's fields as the events list shows them.
func eventProps() props {
	return props{
		"id":             idOf("evt"),
		"type":           str(),
		"createdAt":      dateTime(),
		"data":           nullable(object()).desc("The payload; null when dropped or hidden."),
		"payloadDropped": boolean().desc("The event is past the event retention: its payload is gone and it cannot be sent again."),
		"dataHidden":     boolean().desc("The event carries an API key and the caller lacks api_keys:read."),
	}
}
