// The management client: a method per row of the operations table, named by its operationId and
// typed from the generated OpenAPI types, plus async iterators over lists.
import type { components, operations as Ops } from "./generated/openapi.js";
import { operations, type OperationId } from "./operations.js";
import { Transport, type CallOptions, type Page, type TransportOptions } from "./transport.js";

export type Schemas = components["schemas"];

type Op<K extends OperationId> = Ops[K];
type NN<T> = Exclude<T, undefined | null>;
type Defined<T> = [NN<T>] extends [never] ? false : true;

/** The path parameters of operation K ({id}, {deliveryId}, {userId}). */
export type PathParams<K extends OperationId> = Defined<Op<K>["parameters"]["path"]> extends true ? NN<Op<K>["parameters"]["path"]> : {};
/** The query of operation K. */
export type QueryParams<K extends OperationId> = NN<Op<K>["parameters"]["query"]>;
/** The JSON body of operation K. */
export type RequestBody<K extends OperationId> = Op<K> extends { requestBody?: infer B }
  ? NN<B> extends { content: { "application/json": infer J } } ? J : never
  : never;

type SuccessStatus = 200 | 201 | 202;
type SuccessResponse<K extends OperationId> = Op<K>["responses"][Extract<keyof Op<K>["responses"], SuccessStatus>];
type SuccessContent<K extends OperationId> = SuccessResponse<K> extends { content: infer C } ? C : never;
type JsonSuccess<K extends OperationId> = SuccessContent<K> extends { "application/json": infer J } ? J : never;
type Unwrapped<J> = J extends { success: true; data: infer D; nextCursor: any }
  ? Page<D extends readonly (infer I)[] ? I : never>
  : J extends { success: true; data: infer D } ? D : J;

/** What operation K answers: the envelope's data, a Page for lists, the raw JSON of answers without an envelope. */
export type Result<K extends OperationId> =
  | Unwrapped<JsonSuccess<K>>
  | (SuccessContent<K> extends { "text/csv": any } ? string : never);

type BodyArg<K extends OperationId> = [RequestBody<K>] extends [never]
  ? {}
  : undefined extends Op<K>["requestBody"] ? { body?: RequestBody<K> } : { body: RequestBody<K> };
type QueryArg<K extends OperationId> = Defined<Op<K>["parameters"]["query"]> extends true ? { query?: QueryParams<K> } : {};

/** The argument of operation K's method: its path parameters by name, `query`, `body`, and CallOptions. */
export type Args<K extends OperationId> = PathParams<K> & QueryArg<K> & BodyArg<K> & CallOptions;

type Method<K extends OperationId> = {} extends Args<K>
  ? (args?: Args<K>) => Promise<Result<K>>
  : (args: Args<K>) => Promise<Result<K>>;

/** Operations that answer pages (they take a cursor). */
export type PagedOperationId = {
  [K in OperationId]: QueryParams<K> extends { cursor?: any } ? (Result<K> extends Page<any> ? K : never) : never;
}[OperationId];
type Item<K extends OperationId> = Result<K> extends Page<infer T> ? T : never;

export type KeyplaneMethods = { [K in OperationId]: Method<K> };

export interface KeyplaneOptions extends Omit<TransportOptions, "apiKey"> {
  /** An admin root key (kp_root_…) or a workspace secret key holding keyplane's permissions. */
  apiKey: string;
}

export interface Keyplane extends KeyplaneMethods {}

/**
 * Keyplane is the management client. Every operation of keyplane's OpenAPI document is a method
 * named by its operationId:
 *
 *     const kp = new Keyplane({ baseUrl, apiKey: rootKey, workspaceId });
 *     const key = await kp.createApiKey({ body: { name: "Checkout", keyType: "secret" } });
 *     for await (const k of kp.paginate("listApiKeys", { query: { status: "active" } })) …
 */
export class Keyplane {
  readonly transport: Transport;

  constructor(opts: KeyplaneOptions) {
    this.transport = new Transport(opts);
  }

  /** A client like this one acting on workspace id (X-Workspace-Id), sharing its options. */
  inWorkspace(id: string): Keyplane {
    return new Keyplane({ ...(this.transport.opts as KeyplaneOptions), workspaceId: id });
  }

  /** call makes any operation by its id: what each method does. */
  call<K extends OperationId>(op: K, args?: Args<K>): Promise<Result<K>> {
    return this.transport.call(op, args as Record<string, unknown>) as Promise<Result<K>>;
  }

  /**
   * paginate iterates over every item of a list, page after page, following nextCursor. Breaking
   * out of the loop stops fetching; an error is thrown from the loop.
   */
  async *paginate<K extends PagedOperationId>(op: K, args?: Args<K>): AsyncGenerator<Item<K>, void, undefined> {
    const a: any = { ...(args ?? {}) };
    let cursor: string | undefined = a.query?.cursor;
    for (;;) {
      const page = (await this.transport.call(op, { ...a, query: { ...(a.query ?? {}), cursor } })) as Page<Item<K>>;
      for (const it of page.data) yield it;
      if (!page.nextCursor) return;
      if (page.nextCursor === cursor) throw new Error("keyplane: the list answered the same cursor twice");
      cursor = page.nextCursor;
    }
  }
}

for (const op of Object.keys(operations) as OperationId[]) {
  Object.defineProperty(Keyplane.prototype, op, {
    value: function (this: Keyplane, args?: Record<string, unknown>) {
      return this.transport.call(op, args);
    },
    writable: true,
    configurable: true,
  });
}
