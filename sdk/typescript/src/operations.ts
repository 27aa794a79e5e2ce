// The SDK's one table of keyplane's operations: operationId → [method, path]. Every row becomes a
// method of Keyplane with the operationId as its name, typed from the generated OpenAPI types
// (src/generated/openapi.ts). To add an operation: `npm run generate`, then add its row here; the
// build fails (the `satisfies` below) until every operationId of the document has a row or is in
// NOT_IN_SDK, and test/operations.test.mjs checks the rows against the served document.
import type { operations as Ops } from "./generated/openapi.js";

export type HttpMethod = "GET" | "POST" | "PATCH" | "DELETE";
export type Route = readonly [method: HttpMethod, path: string];

/** Operations of the document the SDK has no method for, and why. */
export const NOT_IN_SDK = {
  githubSecretScanning: "called by GitHub's secret scanning with its own signature, never by a platform's code",
  forwardAuth: "called by reverse proxies (nginx auth_request, Traefik, Envoy); the middleware is the SDK's equivalent",
} as const;

export const operations = {
  // Service
  healthz: ["GET", "/healthz"],
  readyz: ["GET", "/readyz"],
  getStatus: ["GET", "/v1/status"],
  getOpenAPIDocument: ["GET", "/v1/openapi.json"],
  listPermissions: ["GET", "/v1/permissions"],
  listEventTypes: ["GET", "/v1/event-types"],
  // Workspaces and members (root key, admin scope)
  listWorkspaces: ["GET", "/v1/workspaces"],
  createWorkspace: ["POST", "/v1/workspaces"],
  getWorkspace: ["GET", "/v1/workspaces/{id}"],
  updateWorkspace: ["PATCH", "/v1/workspaces/{id}"],
  listMembers: ["GET", "/v1/workspaces/{id}/members"],
  addMember: ["POST", "/v1/workspaces/{id}/members"],
  removeMember: ["DELETE", "/v1/workspaces/{id}/members/{userId}"],
  // API keys
  listApiKeys: ["GET", "/v1/api-keys"],
  createApiKey: ["POST", "/v1/api-keys"],
  getPublishableApiKey: ["GET", "/v1/api-keys/publishable"],
  getApiKey: ["GET", "/v1/api-keys/{id}"],
  updateApiKey: ["PATCH", "/v1/api-keys/{id}"],
  deleteApiKey: ["DELETE", "/v1/api-keys/{id}"],
  rotateApiKey: ["POST", "/v1/api-keys/{id}/rotate"],
  revealApiKey: ["POST", "/v1/api-keys/{id}/reveal"],
  changeApiKeyCredits: ["POST", "/v1/api-keys/{id}/credits"],
  getApiKeyUsage: ["GET", "/v1/api-keys/{id}/usage"],
  importApiKeys: ["POST", "/v1/api-keys/import"],
  // Portal sessions: one-time links into a workspace's portal (portal:write, or a root key)
  createPortalSession: ["POST", "/v1/portal/sessions"],
  // Leaked keys (root key, admin scope)
  reportLeaks: ["POST", "/v1/leaks"],
  // Identities
  listIdentities: ["GET", "/v1/identities"],
  createIdentity: ["POST", "/v1/identities"],
  getIdentity: ["GET", "/v1/identities/{id}"],
  updateIdentity: ["PATCH", "/v1/identities/{id}"],
  deleteIdentity: ["DELETE", "/v1/identities/{id}"],
  changeIdentityCredits: ["POST", "/v1/identities/{id}/credits"],
  // Verification (root key, verify scope)
  verifyApiKey: ["POST", "/v1/verify"],
  verifySignature: ["POST", "/v1/verify/signature"],
  verifyJwt: ["POST", "/v1/verify/jwt"],
  // Audit trail, request log, usage
  listAuditLogs: ["GET", "/v1/audit-logs"],
  verifyAuditLogs: ["GET", "/v1/audit-logs/verify"],
  listRequestLogs: ["GET", "/v1/logs"],
  exportUsage: ["GET", "/v1/usage"],
  // Webhooks and events
  listWebhooks: ["GET", "/v1/webhooks"],
  createWebhook: ["POST", "/v1/webhooks"],
  getWebhook: ["GET", "/v1/webhooks/{id}"],
  updateWebhook: ["PATCH", "/v1/webhooks/{id}"],
  deleteWebhook: ["DELETE", "/v1/webhooks/{id}"],
  rotateWebhookSecret: ["POST", "/v1/webhooks/{id}/rotate-secret"],
  revealWebhookSecret: ["POST", "/v1/webhooks/{id}/reveal-secret"],
  testWebhook: ["POST", "/v1/webhooks/{id}/test"],
  listDeliveries: ["GET", "/v1/webhooks/{id}/deliveries"],
  retryDelivery: ["POST", "/v1/webhooks/{id}/deliveries/{deliveryId}/retry"],
  recoverWebhook: ["POST", "/v1/webhooks/{id}/recover"],
  sendEvent: ["POST", "/v1/events"],
  listEvents: ["GET", "/v1/events"],
  getEvent: ["GET", "/v1/events/{id}"],
  resendEvent: ["POST", "/v1/events/{id}/resend"],
} as const satisfies { [K in Exclude<keyof Ops, keyof typeof NOT_IN_SDK>]: Route };

export type OperationId = keyof typeof operations;
