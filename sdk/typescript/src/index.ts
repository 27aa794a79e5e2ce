export { Keyplane } from "./client.js";
export type { KeyplaneOptions, Args, Result, PathParams, QueryParams, RequestBody, PagedOperationId, Schemas } from "./client.js";
export { operations, NOT_IN_SDK } from "./operations.js";
export type { OperationId, HttpMethod, Route } from "./operations.js";
export { VERSION, parseRetryAfter } from "./transport.js";
export type { TransportOptions, CallOptions, Page, ResponseInfo } from "./transport.js";
export {
  KeyplaneError, BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError, ConflictError,
  UnprocessableError, RateLimitError, InternalServerError, UnavailableError, KeyplaneConnectionError, KeyplaneTimeoutError,
} from "./errors.js";
export type { FieldError } from "./errors.js";
export { Verifier, isCacheable, signRequest, SERVER_CACHE_TTL_MS, DEFAULT_CACHE_TTL_MS, DEFAULT_CACHE_SIZE, MAX_KEY_LENGTH } from "./verifier.js";
export type { VerifierOptions, VerifierCacheOptions, VerifyOptions, VerifyResult, VerifyAnswer, VerifyCode, VerifyRequest } from "./verifier.js";
export { decide, expressMiddleware, fastifyHook, honoMiddleware, keyFromHeaders, normalizeIp, refusalBody } from "./middleware.js";
export type { MiddlewareOptions, Decision } from "./middleware.js";
export { verifyWebhook, signWebhook, WebhookVerificationError } from "./webhooks.js";
export type { WebhookEvent, VerifyWebhookOptions, HeadersLike } from "./webhooks.js";
export type { components, paths, operations as OpenAPIOperations } from "./generated/openapi.js";
