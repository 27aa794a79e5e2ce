package api

import (
	"fmt"
	"net/http"

	"github.com/keyplane/keyplane"
)

// routes registers the route table.
func (s *Server) routes() {
	for _, o := range operations() {
		h := o.handler(s)
		for _, p := range o.patterns() {
			s.mux.Handle(p, h)
		}
	}
}

// patterns are the mux patterns of o: its method and path, and any it answers as well.
func (o operation) patterns() []string {
	return append([]string{o.method + " " + o.path}, o.also...)
}

// handler is o's handler on s: handle run by auth for o's access, or serve as it is.
func (o operation) handler(s *Server) http.Handler {
	mode, authenticated := o.access.mode()
	switch {
	case authenticated && o.handle != nil && o.serve == nil:
		h := o.handle
		run := handler(func(w http.ResponseWriter, r *http.Request, c *call) error { return h(s, w, r, c) })
		if o.idempotent() {
			run = s.idempotent(run)
		}
		return s.auth(mode, run)
	case !authenticated && o.serve != nil && o.handle == nil:
		h := o.serve
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(s, w, r) })
	}
	panic(fmt.Sprintf("api: %s %s: an operation with access %d needs exactly its kind of handler", o.method, o.path, o.access))
}

// access is who may call an operation; it decides the security requirement and the errors that
// authentication alone can answer (see auth.go).
type access int

const (
	public       access = iota // no credential
	management                 // anyCaller: admin root key or workspace secret key
	workspaced                 // inWorkspace: the same, acting on one workspace
	verification               // verifier: root key with the verify scope
	forwarded                  // forward auth: a verify root key in X-Keyplane-Root-Key, the key in the client's headers
)

// mode is the auth mode that authenticates an operation of access a; false for the operations that
// authenticate no caller (public ones, and forward auth, which checks the proxy's root key itself).
func (a access) mode() (authMode, bool) {
	switch a {
	case management:
		return anyCaller, true
	case workspaced:
		return inWorkspace, true
	case verification:
		return verifier, true
	}
	return 0, false
}

// operation is one row of the route table: how the server routes and authenticates a request
// (method, path, access, the handler) and how the OpenAPI document describes it (the rest).
type operation struct {
	method, path string
	access       access
	// serve answers a public or forward-auth operation by itself; handle is an authenticated
	// operation's handler, run by auth for its access. Exactly one of them is set.
	serve  func(*Server, http.ResponseWriter, *http.Request)
	handle func(*Server, http.ResponseWriter, *http.Request, *call) error
	// also are further mux patterns the handler answers, which the operation's description covers:
	// forward auth's, for any method and any path under its own.
	also []string

	id, tag      string
	summary      string
	description  string
	query        []map[string]any
	body         string // a components/schemas name; "" for none
	bodyOptional bool   // the body may be left out (decode's optional)
	status       int    // the success status
	data         schema // the success answer's data (or whole answer, see raw)
	list         bool   // data is a page: the list envelope
	raw          bool   // the answer is data itself, without the envelope
	errors       []string
	extra        map[int]any // further non-error answers (readyz's 503)
}

// operations is the route table: every route the server registers (routes) and every operation the
// OpenAPI document describes (buildOpenAPI) comes from it, and nothing else is registered.
func operations() []operation {
	keyBody := []string{"BadRequest", "PayloadTooLarge", "UnsupportedMediaType"}
	since := param("since", "query", "Only entries at or after this time (RFC 3339).", dateTime())
	until := param("until", "query", "Only entries before this time (RFC 3339); must be after since.", dateTime())
	return []operation{
		{method: "GET", path: "/healthz", access: public, serve: (*Server).healthz,
			id: "healthz", tag: "health", summary: "Liveness",
			description: "Answers while the process serves HTTP. Not enveloped.",
			status:      200, data: ref("Health"), raw: true},
		{method: "GET", path: "/readyz", access: public, serve: (*Server).readyz,
			id: "readyz", tag: "health", summary: "Readiness",
			description: "200 when the store answers within 2 s, else 503. Not enveloped.",
			status:      200, data: ref("Ready"), raw: true,
			extra: map[int]any{503: map[string]any{"description": "The store does not answer.", "headers": requestIDHeader(), "content": jsonContent(ref("NotReady"))}}},
		{method: "GET", path: "/v1/status", access: public, serve: (*Server).status,
			id: "getStatus", tag: "health", summary: "Service status",
			description: "Version, uptime and whether the store answers; always 200.",
			status:      200, data: ref("Status")},
		{method: "GET", path: "/v1/openapi.json", access: public, serve: (*Server).openapi,
			id: "getOpenAPIDocument", tag: "health", summary: "This document",
			description: "The OpenAPI 3.1 document, raw: the one /v1 answer without the envelope.",
			status:      200, data: ref("OpenAPIDocument"), raw: true},

		{method: "GET", path: "/v1/permissions", access: management, handle: (*Server).listPermissions,
			id: "listPermissions", tag: "catalog", summary: "List the permission catalog",
			description: "keyplane's own permissions and the deployment's, sorted by name. Not paginated.",
			status:      200, data: array(ref("CatalogEntry"))},
		{method: "GET", path: "/v1/event-types", access: management, handle: (*Server).listEventTypes,
			id: "listEventTypes", tag: "catalog", summary: "List the event types",
			description: "keyplane's own event types and the deployment's, sorted by name. Not paginated.",
			status:      200, data: array(ref("CatalogEntry"))},

		{method: "GET", path: "/v1/workspaces", access: management, handle: (*Server).listWorkspaces,
			id: "listWorkspaces", tag: "workspaces", summary: "List workspaces",
			description: "Every workspace for an admin root key, newest first; a workspace key sees only its own (one page).",
			query:       []map[string]any{paramRef("limit"), paramRef("cursor")},
			status:      200, data: ref("Workspace"), list: true, errors: []string{"BadRequest"}},
		{method: "POST", path: "/v1/workspaces", access: management, handle: (*Server).createWorkspace,
			id: "createWorkspace", tag: "workspaces", summary: "Create a workspace",
			description: "Operator only (admin root key). A slug already in use is 400 with details on slug.",
			body:        "CreateWorkspaceRequest", status: 201, data: ref("Workspace"), errors: keyBody},
		{method: "GET", path: "/v1/workspaces/{id}", access: management, handle: (*Server).getWorkspace,
			id: "getWorkspace", tag: "workspaces", summary: "Get a workspace",
			status: 200, data: ref("Workspace"), errors: []string{"NotFound"}},
		{method: "PATCH", path: "/v1/workspaces/{id}", access: management, handle: (*Server).updateWorkspace,
			id: "updateWorkspace", tag: "workspaces", summary: "Change a workspace's name, slug or settings",
			description: "Operator only: a workspace key gets 403 on its own workspace and 404 on any other.",
			body:        "UpdateWorkspaceRequest", status: 200, data: ref("Workspace"), errors: append([]string{"NotFound"}, keyBody...)},
		{method: "GET", path: "/v1/workspaces/{id}/members", access: management, handle: (*Server).listMembers,
			id: "listMembers", tag: "workspaces", summary: "List a workspace's members",
			description: "Operator only among API callers (workspace keys get 403). One page: nextCursor is always null.",
			status:      200, data: ref("Member"), list: true, errors: []string{"NotFound"}},
		{method: "POST", path: "/v1/workspaces/{id}/members", access: management, handle: (*Server).addMember,
			id: "addMember", tag: "workspaces", summary: "Invite a person to a workspace, or change a member's role",
			description: "A person who is not a member yet is invited (201, status invited): they have no access until they accept from their own dashboard session. " +
				"Creates the person's account, without a password, if there is none. Someone already there (member or invited) gets the new role (200); " +
				"only an owner or the operator may change an owner's role, and the last active owner's is 409 last_owner.",
			body: "AddMemberRequest", status: 201, data: ref("Member"), errors: append([]string{"NotFound", "LastOwner"}, keyBody...),
			extra: map[int]any{200: map[string]any{"description": "A change of role of a member or invitation that was already there (or none, when the role is the same).",
				"headers": requestIDHeader(), "content": jsonContent(sealed(props{"success": boolean().constant(true), "data": ref("Member")}))}}},
		{method: "DELETE", path: "/v1/workspaces/{id}/members/{userId}", access: management, handle: (*Server).removeMember,
			id: "removeMember", tag: "workspaces", summary: "Remove a member, or revoke an invitation",
			description: "Ends the person's access to the workspace at once and answers the member as they were. Only an owner or the operator may remove an owner; " +
				"removing the last active owner is 409 last_owner. A person who is not a member of this workspace is 404.",
			status: 200, data: ref("Member"), errors: []string{"NotFound", "LastOwner"}},

		{method: "POST", path: "/v1/portal/sessions", access: workspaced, handle: (*Server).createPortalSession,
			id: "createPortalSession", tag: "portal", summary: "Make a one-time link into the workspace's portal",
			description: "For one of the platform's own users, no keyplane account needed: the link (under --public-url) works once, before expiresAt, " +
				"and opens a portal session of the role (admin, developer or viewer; owner is 400) limited to the workspace: its API keys, webhooks, logs " +
				"and usage pages, with the workspace's branding and a way back to returnUrl, for --portal-session-ttl. A used, expired or forged link " +
				"answers a page that says so, never a session. A portal session may not set credits, rate limits or identities, nor grant keyplane's own " +
				"permissions. Needs portal:write (a workspace key) or an admin root key with X-Workspace-Id. Audited (portal_session.created).",
			body: "CreatePortalSessionRequest", status: 201, data: ref("PortalLink"), errors: keyBody},

		{method: "GET", path: "/v1/api-keys", access: workspaced, handle: (*Server).listKeys,
			id: "listApiKeys", tag: "api-keys", summary: "List API keys",
			description: "Newest first. Needs api_keys:read.",
			status:      200, data: ref("ApiKey"), list: true,
			query: []map[string]any{
				param("environment", "query", "Only keys of this environment.", ref("Environment")),
				param("keyType", "query", "Only keys of this type.", ref("KeyType")),
				param("status", "query", "Only keys of this status.", enum(keyplane.StatusActive, keyplane.StatusDisabled, keyplane.StatusExpired, keyplane.StatusRevoked)),
				param("externalId", "query", "Only keys of the identity with this externalId (none when the workspace has no such identity). Not with identityId.", str().length(1, keyplane.MaxExternalIDLen)),
				param("identityId", "query", "Only keys of this identity. Not with externalId.", idOf("idn")),
				paramRef("limit"), paramRef("cursor"),
			}},
		{method: "POST", path: "/v1/api-keys", access: workspaced, handle: (*Server).createKey,
			id: "createApiKey", tag: "api-keys", summary: "Create an API key",
			description: "Answers the key object plus keyValue: the only time a secret key's value is shown (unless recoverable). Needs api_keys:write; " +
				"a workspace key creates keys of its own environment only, with permissions it holds itself, and at least as bounded as itself " +
				"(expiresAt no later, ipAllowlist within, rateLimit no looser, when it has them; 403 otherwise).",
			body: "CreateApiKeyRequest", status: 201, data: ref("ApiKeyWithValue"),
			errors: append([]string{"ForbiddenOrLiveModeOff", "KeyLimitReached"}, keyBody...)},
		{method: "POST", path: "/v1/api-keys/import", access: workspaced, handle: (*Server).importKeys,
			id: "importApiKeys", tag: "api-keys", summary: "Import existing keys, keeping their values",
			description: "For a platform moving to keyplane whose customers hold keys already: up to 1,000 keys a call, each with its existing value " +
				"(any format: it verifies as it is) or that value's SHA-256 digest. Each item is checked as at creation (POST /v1/api-keys) and answered " +
				"on its own, in order: {index, id} or {index, error}, the others imported all the same, in one transaction, each with an api_key.imported " +
				"audit entry; no webhook event is sent. A value already stored or given twice fails its item; past the workspace's maxKeys the remaining " +
				"items fail with key_limit_reached. Values are stored as digests only: imported keys are never recoverable. More than 1,000 keys is 400. " +
				"Needs api_keys:write; a workspace key imports keys of its own environment, with permissions it holds, at least as bounded as itself.",
			body: "ImportApiKeysRequest", status: 201, data: ref("ImportApiKeysResult"), errors: keyBody},
		{method: "GET", path: "/v1/api-keys/publishable", access: workspaced, handle: (*Server).publishableKey,
			id: "getPublishableApiKey", tag: "api-keys", summary: "Get the newest active publishable key",
			description: "With its keyValue; 404 when the environment has none. Needs api_keys:read; a workspace key, of its own environment (403 otherwise).",
			status:      200, data: ref("ApiKeyWithValue"),
			query: []map[string]any{param("environment", "query", "The environment; live when absent.", ref("Environment").def(string(keyplane.EnvLive)))}},
		{method: "GET", path: "/v1/api-keys/{id}", access: workspaced, handle: (*Server).getKey,
			id: "getApiKey", tag: "api-keys", summary: "Get an API key",
			description: "Never holds the value. Needs api_keys:read.",
			status:      200, data: ref("ApiKey")},
		{method: "PATCH", path: "/v1/api-keys/{id}", access: workspaced, handle: (*Server).updateKey,
			id: "updateApiKey", tag: "api-keys", summary: "Change an API key, or enable or disable it",
			description: "Needs api_keys:write. A revoked key cannot change (409 key_revoked). A workspace key changes only keys of its own environment " +
				"holding no permission it lacks and at least as bounded as itself (expiresAt, ipAllowlist, rateLimit), gives only permissions it holds " +
				"and bounds no looser than its own, and never changes itself (403 otherwise).",
			body: "UpdateApiKeyRequest", status: 200, data: ref("ApiKey"), errors: append([]string{"KeyRevoked"}, keyBody...)},
		{method: "DELETE", path: "/v1/api-keys/{id}", access: workspaced, handle: (*Server).deleteKey,
			id: "deleteApiKey", tag: "api-keys", summary: "Revoke an API key, or delete it permanently",
			description: "Without permanent=true: revokes, irreversibly; again answers the same. With permanent=true: deletes a disabled or revoked key " +
				"and its stored values (409 key_not_deletable otherwise); the audit trail keeps its record. Needs api_keys:write; a workspace key " +
				"acts only on keys of its own environment holding no permission it lacks and at least as bounded as itself (403 otherwise).",
			status: 200, data: schema{"oneOf": []any{ref("RevokedApiKey"), ref("DeletedApiKey")}},
			query:  []map[string]any{param("permanent", "query", "true to delete rather than revoke.", enum("true", "false").def("false"))},
			errors: []string{"KeyNotDeletable"}},
		{method: "POST", path: "/v1/api-keys/{id}/rotate", access: workspaced, handle: (*Server).rotateKey,
			id: "rotateApiKey", tag: "api-keys", summary: "Give an API key a new value",
			description: "Same id, name and settings; the old value stops at once or after expireOldAfterSeconds (then verifies EXPIRED). Needs api_keys:write; " +
				"a workspace key rotates itself, or keys of its own environment holding no permission it lacks and at least as bounded as itself (403 otherwise).",
			body: "RotateApiKeyRequest", bodyOptional: true, status: 200, data: ref("ApiKeyWithValue"),
			errors: append([]string{"KeyRevoked"}, keyBody...)},
		{method: "POST", path: "/v1/api-keys/{id}/reveal", access: workspaced, handle: (*Server).revealKey,
			id: "revealApiKey", tag: "api-keys", summary: "Reveal a key's current value",
			description: "A publishable key's value for anyone with api_keys:read (a workspace key: of its own environment); a recoverable secret key's only for an admin root key " +
				"(403 otherwise, and for secret keys that are not recoverable). Every reveal and refusal is audited.",
			body: "RevealApiKeyRequest", bodyOptional: true, status: 200, data: ref("RevealedApiKey"),
			errors: append([]string{"KeyRevoked"}, keyBody...)},

		{method: "GET", path: "/v1/audit-logs", access: workspaced, handle: (*Server).listAudit,
			id: "listAuditLogs", tag: "audit", summary: "List the audit trail",
			description: "Newest first. Needs audit:read. Without api_keys:read, entries about API keys come with the values of the key's fields hidden (redacted: true), and no entry carries hash or prevHash.",
			status:      200, data: ref("AuditEntry"), list: true,
			query: []map[string]any{
				param("action", "query", "Only entries of this action, such as api_key.created.", str()),
				param("actorId", "query", "Only entries by this actor.", str()),
				param("targetId", "query", "Only entries about this resource.", str()),
				since, until, paramRef("limit"), paramRef("cursor"),
			}},
		{method: "GET", path: "/v1/audit-logs/verify", access: workspaced, handle: (*Server).verifyAudit,
			id: "verifyAuditLogs", tag: "audit", summary: "Check the audit trail's hash chain",
			description: "Recomputes the workspace's chain from the stored entries. Needs audit:read.",
			status:      200, data: ref("AuditVerification")},

		{method: "GET", path: "/v1/logs", access: workspaced, handle: (*Server).listLogs,
			id: "listRequestLogs", tag: "logs", summary: "List the request log",
			description: "Every verification of one of the workspace's keys and every management call made with one, newest first. " +
				"Entries are written in batches, within about a second. A verification of an unknown key (NOT_FOUND) belongs to no " +
				"workspace and is in no log. Pages never repeat or skip an entry while new ones arrive. Needs logs:read.",
			status: 200, data: ref("RequestLog"), list: true,
			query: []map[string]any{
				param("keyId", "query", "Only entries of this key.", idOf("apk")),
				param("code", "query", "Only entries with this code.", ref("VerifyCode")),
				param("source", "query", "Only entries of this source.", ref("LogSource")),
				param("tag", "query", "Only verifications whose request carried this tag.", str().maxLen(keyplane.MaxTagLen)),
				since, until, paramRef("limit"), paramRef("cursor"),
			}},
		{method: "GET", path: "/v1/usage", access: workspaced, handle: (*Server).exportUsage,
			id: "exportUsage", tag: "logs", summary: "Usage export for billing",
			description: "The workspace's requests summed per key (or per identity: keys without one are left out) and per UTC hour, day or month, " +
				"ordered by period then group; only groups with requests in a period have a row. JSON: the envelope, data an array of rows. " +
				"CSV (format=csv): a header row (keyId or identityId, externalId, start, total, valid, creditsSpent, then one column per verification code) " +
				"and a row per group and period. Streamed: an export of any size is answered without being held in memory; a failure after the answer " +
				"began cuts it short. Counts come from the hourly rollups, as GET /v1/api-keys/{id}/usage's do. Needs logs:read.",
			status: 200, data: array(ref("UsageRow")),
			query: []map[string]any{
				param("groupBy", "query", "What a row sums: one key's requests, or one identity's (all its keys).", enum(keyplane.GroupByKey, keyplane.GroupByIdentity).def(string(keyplane.GroupByKey))),
				param("granularity", "query", "The period of a row: a UTC hour, day or month.", enum(keyplane.GranularityHour, keyplane.GranularityDay, keyplane.GranularityMonth).def(string(keyplane.GranularityDay))),
				param("since", "query", "The first period: the one this time (RFC 3339) falls in; by default the start of the current UTC month.", dateTime()),
				param("until", "query", "Periods that start before this time (RFC 3339); by default now.", dateTime()),
				param("format", "query", "json (the envelope) or csv (text/csv, not enveloped).", enum("json", "csv").def("json")),
			},
			extra: map[int]any{200: map[string]any{"description": "The rows, as JSON or CSV.", "headers": requestIDHeader(), "content": map[string]any{
				"application/json": map[string]any{"schema": sealed(props{"success": boolean().constant(true), "data": array(ref("UsageRow"))})},
				"text/csv":         map[string]any{"schema": str().desc("A header row, then a row per group and period (RFC 4180).")},
			}}}},

		{method: "GET", path: "/v1/identities", access: workspaced, handle: (*Server).listIdentities,
			id: "listIdentities", tag: "identities", summary: "List identities",
			description: "Newest first. Needs identities:read.",
			status:      200, data: ref("Identity"), list: true,
			query: []map[string]any{paramRef("limit"), paramRef("cursor")}},
		{method: "POST", path: "/v1/identities", access: workspaced, handle: (*Server).createIdentity,
			id: "createIdentity", tag: "identities", summary: "Create an identity",
			description: "An identity is a customer of the platform, by the platform's own id for it (externalId, unique in the workspace: 409 identity_exists): " +
				"its keys share its credits and rate limits. A key created or changed with an externalId no identity has yet makes one. Needs identities:write.",
			body: "CreateIdentityRequest", status: 201, data: ref("Identity"), errors: append([]string{"IdentityExists"}, keyBody...)},
		{method: "GET", path: "/v1/identities/{id}", access: workspaced, handle: (*Server).getIdentity,
			id: "getIdentity", tag: "identities", summary: "Get an identity",
			description: "Needs identities:read.",
			status:      200, data: ref("Identity")},
		{method: "PATCH", path: "/v1/identities/{id}", access: workspaced, handle: (*Server).updateIdentity,
			id: "updateIdentity", tag: "identities", summary: "Change an identity",
			description: "Only the fields given change; credits null makes the identity's keys unlimited by it, rateLimits replaces the list. " +
				"Every key of the identity sees the change at once. Needs identities:write.",
			body: "UpdateIdentityRequest", status: 200, data: ref("Identity"), errors: append([]string{"IdentityExists"}, keyBody...)},
		{method: "DELETE", path: "/v1/identities/{id}", access: workspaced, handle: (*Server).deleteIdentity,
			id: "deleteIdentity", tag: "identities", summary: "Delete an identity",
			description: "Only an identity no key belongs to any more (revoked keys count): 409 identity_in_use otherwise; delete its keys permanently, " +
				"or move them (PATCH the key's identityId or externalId, or null), first. Needs identities:write.",
			status: 200, data: ref("DeletedIdentity"), errors: []string{"IdentityInUse"}},
		{method: "POST", path: "/v1/identities/{id}/credits", access: workspaced, handle: (*Server).changeIdentityCredits,
			id: "changeIdentityCredits", tag: "identities", summary: "Set, increment or decrement an identity's credits",
			description: "Answers the balance after. set keeps the refill and makes an unlimited identity limited; increment and decrement need a balance " +
				"(400 on op otherwise); a decrement stops at 0, an increment at 10^12. Audited; reaching 0 sends api_key.credits_exhausted. Needs identities:write.",
			body: "CreditsOperation", status: 200, data: ref("Credits"), errors: keyBody},
		{method: "POST", path: "/v1/api-keys/{id}/credits", access: workspaced, handle: (*Server).changeKeyCredits,
			id: "changeApiKeyCredits", tag: "api-keys", summary: "Set, increment or decrement a key's credits",
			description: "Answers the balance after. set keeps the refill and makes an unlimited key limited; increment and decrement need a balance " +
				"(400 on op otherwise); a decrement stops at 0, an increment at 10^12. Audited; reaching 0 sends api_key.credits_exhausted. " +
				"Needs api_keys:write; a workspace key, on keys within its reach (as PATCH), never itself.",
			body: "CreditsOperation", status: 200, data: ref("Credits"), errors: append([]string{"KeyRevoked"}, keyBody...)},
		{method: "GET", path: "/v1/api-keys/{id}/usage", access: workspaced, handle: (*Server).keyUsage,
			id: "getApiKeyUsage", tag: "logs", summary: "A key's usage per hour or per day",
			description: "Requests of the key's request log counted per bucket, oldest first, every bucket of the range included (empty " +
				"ones as zeros), at most 1000. Counts may lag the log by up to the server's usage flush interval (5 s by default) and " +
				"never exceed it; after a clean stop they equal it. They are kept longer than the log itself (400 days by default). Needs logs:read.",
			status: 200, data: array(ref("UsageBucket")),
			query: []map[string]any{
				param("granularity", "query", "The width of a bucket: a UTC hour or day.", enum(keyplane.GranularityHour, keyplane.GranularityDay).def(string(keyplane.GranularityHour))),
				param("since", "query", "The range's start (RFC 3339), rounded down to its bucket; by default 24 hours or 30 days before until.", dateTime()),
				param("until", "query", "The range's end (RFC 3339), rounded up to a bucket's end; by default the end of the current bucket.", dateTime()),
			}},

		{method: "GET", path: "/v1/webhooks", access: workspaced, handle: (*Server).listWebhooks,
			id: "listWebhooks", tag: "webhooks", summary: "List webhook endpoints",
			description: "Newest first. Needs webhooks:read.",
			status:      200, data: ref("WebhookEndpoint"), list: true,
			query: []map[string]any{paramRef("limit"), paramRef("cursor")}},
		{method: "POST", path: "/v1/webhooks", access: workspaced, handle: (*Server).createWebhook,
			id: "createWebhook", tag: "webhooks", summary: "Subscribe a URL to events",
			description: "Answers the endpoint with its signing secret. The URL's host is resolved: one that resolves to a loopback, private, " +
				"link-local, CGNAT, multicast or metadata address is refused (unless the deployment allows private addresses). Needs webhooks:write; " +
				"subscribing to api_key.* events or * also needs api_keys:read (403 otherwise), since those events carry whole keys.",
			body: "CreateWebhookRequest", status: 201, data: ref("WebhookEndpointWithSecret"), errors: keyBody},
		{method: "GET", path: "/v1/webhooks/{id}", access: workspaced, handle: (*Server).getWebhook,
			id: "getWebhook", tag: "webhooks", summary: "Get a webhook endpoint",
			description: "Never holds the secret. Needs webhooks:read.",
			status:      200, data: ref("WebhookEndpoint")},
		{method: "PATCH", path: "/v1/webhooks/{id}", access: workspaced, handle: (*Server).updateWebhook,
			id: "updateWebhook", tag: "webhooks", summary: "Change, enable or disable an endpoint",
			description: "Disabling ends its pending attempts. Needs webhooks:write; an endpoint that receives api_key.* events or * " +
				"(before or after the change) is changed only with api_keys:read too (403 otherwise).",
			body: "UpdateWebhookRequest", status: 200, data: ref("WebhookEndpoint"), errors: keyBody},
		{method: "DELETE", path: "/v1/webhooks/{id}", access: workspaced, handle: (*Server).deleteWebhook,
			id: "deleteWebhook", tag: "webhooks", summary: "Delete an endpoint and its deliveries log",
			description: "Needs webhooks:write.",
			status:      200, data: ref("DeletedWebhook")},
		{method: "POST", path: "/v1/webhooks/{id}/rotate-secret", access: workspaced, handle: (*Server).rotateWebhookSecret,
			id: "rotateWebhookSecret", tag: "webhooks", summary: "Give an endpoint a new signing secret",
			description: "The previous secret keeps signing, as a second signature, for 24 hours. Needs webhooks:write.",
			body:        "EmptyRequest", bodyOptional: true, status: 200, data: ref("WebhookEndpointWithSecret"), errors: keyBody},
		{method: "POST", path: "/v1/webhooks/{id}/reveal-secret", access: workspaced, handle: (*Server).revealWebhookSecret,
			id: "revealWebhookSecret", tag: "webhooks", summary: "Reveal an endpoint's signing secret",
			description: "Needs webhooks:write; people need the owner or admin role. Audited.",
			body:        "EmptyRequest", bodyOptional: true, status: 200, data: ref("WebhookEndpointWithSecret"), errors: keyBody},
		{method: "POST", path: "/v1/webhooks/{id}/test", access: workspaced, handle: (*Server).testWebhook,
			id: "testWebhook", tag: "webhooks", summary: "Send a test event now",
			description: "Synchronous: answers what the endpoint answered, within 15 s. Logged as a webhook.test delivery, never retried. Needs webhooks:write.",
			body:        "TestWebhookRequest", bodyOptional: true, status: 200, data: ref("WebhookTestResult"), errors: keyBody},
		{method: "GET", path: "/v1/webhooks/{id}/deliveries", access: workspaced, handle: (*Server).listDeliveries,
			id: "listDeliveries", tag: "webhooks", summary: "An endpoint's delivery attempts",
			description: "Newest first; each retry is an attempt of its own. Needs webhooks:read.",
			status:      200, data: ref("Delivery"), list: true,
			query: []map[string]any{
				param("status", "query", "Only attempts of this status.", enum(keyplane.DeliveryPending, keyplane.DeliverySucceeded, keyplane.DeliveryFailed)),
				paramRef("limit"), paramRef("cursor"),
			}},
		{method: "POST", path: "/v1/webhooks/{id}/deliveries/{deliveryId}/retry", access: workspaced, handle: (*Server).retryDelivery,
			id: "retryDelivery", tag: "webhooks", summary: "Queue a new attempt of a delivery",
			description: "Answers 202 with the new, pending attempt. Only a failed attempt is retried (409 delivery_not_retryable for one that succeeded or is pending); test sends are not retried; a disabled endpoint must be enabled first; an event past the event retention answers 410 event_payload_dropped. Needs webhooks:write.",
			body:        "EmptyRequest", bodyOptional: true, status: 202, data: ref("Delivery"), errors: append([]string{"DeliveryNotRetryable", "EventPayloadDropped"}, keyBody...)},
		{method: "POST", path: "/v1/events", access: workspaced, handle: (*Server).sendEvent,
			id: "sendEvent", tag: "webhooks", summary: "Send a custom event",
			description: "Queues it for every enabled endpoint subscribed to its type; answers 202. Needs events:write.",
			body:        "SendEventRequest", status: 202, data: ref("SentEvent"), errors: keyBody},
		{method: "POST", path: "/v1/webhooks/{id}/recover", access: workspaced, handle: (*Server).recoverWebhook,
			id: "recoverWebhook", tag: "webhooks", summary: "Send again the failed deliveries of a window",
			description: "Queues one new attempt, due now, for every event created in [since, until) (until: now when absent) whose last attempt to " +
				"this endpoint failed and whose type it still subscribes to; not for events that later succeeded, nor for those with an attempt still pending (a scheduled retry, an " +
				"earlier recovery's), so that recovering a window twice queues nothing twice. Each attempt is signed anew under the event's own " +
				"webhook-id and is made once (its failure schedules nothing more). Answers 202 {queued}. since must lie within the event retention " +
				"(--event-retention, default 30 days), whose older payloads are dropped; the endpoint must be enabled. Needs webhooks:write.",
			body: "RecoverWebhookRequest", status: 202, data: ref("Queued"), errors: keyBody},
		{method: "GET", path: "/v1/events", access: workspaced, handle: (*Server).listEvents,
			id: "listEvents", tag: "webhooks", summary: "List the workspace's events",
			description: "Newest first, every type. data is null when the payload is past the event retention (payloadDropped) or when the " +
				"event carries an API key (api_key.*) and the caller lacks api_keys:read (dataHidden). Needs webhooks:read.",
			status: 200, data: ref("Event"), list: true,
			query: []map[string]any{
				param("type", "query", "Only events of this type.", str()),
				since, until, paramRef("limit"), paramRef("cursor"),
			}},
		{method: "GET", path: "/v1/events/{id}", access: workspaced, handle: (*Server).getEvent,
			id: "getEvent", tag: "webhooks", summary: "Get an event and what became of it",
			description: "The event with, per endpoint it was sent to, its attempts and the last one's status. Needs webhooks:read.",
			status:      200, data: ref("EventDetail")},
		{method: "POST", path: "/v1/events/{id}/resend", access: workspaced, handle: (*Server).resendEvent,
			id: "resendEvent", tag: "webhooks", summary: "Send an event again",
			description: "Queues one new attempt, due now, to endpointId, or, when absent, to every enabled endpoint subscribed to the event's " +
				"type (those with an attempt of it pending are skipped). A named endpoint must be enabled and subscribed to the type (400), " +
				"and have no attempt of the event pending (409 delivery_not_retryable). An event past the event retention answers 410 " +
				"event_payload_dropped. Answers 202 {queued}. Needs webhooks:write.",
			body: "ResendEventRequest", bodyOptional: true, status: 202, data: ref("Queued"),
			errors: append([]string{"DeliveryNotRetryable", "EventPayloadDropped"}, keyBody...)},

		{method: "POST", path: "/v1/verify", access: verification, handle: (*Server).verifyKey,
			id: "verifyApiKey", tag: "verification", summary: "Verify an API key",
			description: "A well-formed request always answers 200: the outcome is data.code. Needs a root key with the verify scope. " +
				"A verification of a key that exists is logged in its workspace's request log (GET /v1/logs).",
			body: "VerifyRequest", status: 200, data: ref("VerifyAnswer"), errors: keyBody},
		{method: "GET", path: "/v1/auth", access: forwarded, serve: (*Server).forwardAuth,
			// Any method, as proxies forward the client's; and any path under it, as Envoy's ext_authz
			// appends the client's.
			also: []string{"/v1/auth", "/v1/auth/"},
			id:   "forwardAuth", tag: "verification", summary: "Forward auth for a reverse proxy",
			description: "For nginx auth_request, Traefik ForwardAuth and Envoy ext_authz (HTTP); any method is answered alike. The key comes from " +
				"Authorization: Bearer or X-API-Key, the required permissions from X-Required-Permissions (comma-separated), the client's address " +
				"from X-Forwarded-For or X-Real-IP when the peer is a trusted proxy, the origin from Origin. 200 sets X-Keyplane-Key-Id, " +
				"X-Keyplane-Workspace-Id, X-Keyplane-Environment and X-Keyplane-Permissions for the upstream; 401 for an unknown, disabled, expired " +
				"or revoked key (and a missing or wrong X-Keyplane-Root-Key, which the server logs); 403 for FORBIDDEN and INSUFFICIENT_PERMISSIONS; " +
				"429 with Retry-After when the key's rate limit is used up. Logged under source auth.",
			status: 200, data: sealed(props{"valid": boolean().constant(true), "code": str().constant(string(keyplane.VerifyValid))}),
			query: []map[string]any{
				param("X-API-Key", "header", "The client's key, when it does not send Authorization: Bearer.", str()),
				param("X-Required-Permissions", "header", "Permissions the key must hold, comma-separated.", str()),
			}},
		{method: "POST", path: "/v1/verify/signature", access: verification, handle: (*Server).verifySignature,
			id: "verifySignature", tag: "verification", summary: "Verify a request signed with a key",
			description: "Checks an HMAC-SHA256 request signature made with a recoverable key's value: constant-time, within ±300 s, each " +
				"signature once (replays are INVALID_SIGNATURE). The key's status is told only for a good signature. Needs a root key with the verify scope.",
			body: "VerifySignatureRequest", status: 200, data: ref("SignedAnswer"), errors: keyBody},
		{method: "POST", path: "/v1/verify/jwt", access: verification, handle: (*Server).verifyJWT,
			id: "verifyJwt", tag: "verification", summary: "Verify a JWT signed with a key",
			description: "HS256 only; kid names the key, which must be recoverable; exp required and at most 1 hour after iat (or now); nbf honoured; " +
				"30 s of leeway. Answers the claims. Needs a root key with the verify scope.",
			body: "VerifyJWTRequest", status: 200, data: ref("SignedAnswer"), errors: keyBody},

		// Leaked keys (API.md, "Leaked keys").
		{method: "POST", path: "/v1/leaks", access: management, handle: (*Server).reportLeaks,
			id: "reportLeaks", tag: "leaks", summary: "Report leaked key values",
			description: "Operator only (admin root key): for the platform's own scanners. Each value is looked up as verification does; a secret " +
				"key found gets its workspace's leakPolicy (revoke, disable or notify) before the answer is sent, with an api_key.leaked audit " +
				"entry (actor system) and event. Answers per value, in order. The same value reported again changes nothing more (already_reported).",
			body: "LeakReportRequest", status: 200, data: array(ref("LeakResult")), errors: keyBody},
		{method: "POST", path: "/v1/secret-scanning/github", access: public, serve: (*Server).githubScanning,
			id: "githubSecretScanning", tag: "leaks", summary: "GitHub secret scanning partner endpoint",
			description: "No keyplane credential: the Github-Public-Key-Signature header (base64 ASN.1 ECDSA P-256 SHA-256 over the raw body, by the key " +
				"Github-Public-Key-Identifier names, from --github-scanning-keys) authenticates the batch; a bad or missing signature is 401. At most " +
				"1,000 tokens and 1 MiB. Handled as POST /v1/leaks; the answer is GitHub's own array, not enveloped: true_positive for a secret " +
				"key's value, false_positive for anything else. Without --github-scanning-keys: 404.",
			query: []map[string]any{
				param("Github-Public-Key-Identifier", "header", "Which of GitHub's keys signed the body.", str()),
				param("Github-Public-Key-Signature", "header", "Base64 of the ASN.1 DER ECDSA signature of the raw body.", str()),
			},
			body: "GitHubScanningBatch", status: 200, data: array(ref("GitHubScanningLabel")), raw: true,
			errors: []string{"BadRequest", "Unauthorized", "NotFound", "PayloadTooLarge", "RateLimited", "Unavailable"}},
	}
}
