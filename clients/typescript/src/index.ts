/** A typed client of the customer-value CRM gateway: every path, parameter, body and answer (problems included)
 * is typed from the gateway's merged OpenAPI document (`src/schema.d.ts`, `npm run generate`). */
import createClient, { type Client, type ClientOptions } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths };
export type Schemas = components["schemas"];
export type CrmClient = Client<paths>;
/** One event of a `POST /v1/events` batch (a CloudEvents 1.0 envelope; `data` per type, see `/asyncapi`). */
export type PartnerEvent = NonNullable<paths["/v1/events"]["post"]["requestBody"]>["content"]["application/json"][number];
/** The problem types (RFC 9457 `type`) the gateway and the services answer with. */
export const PROBLEM_TYPE_BASE = "https://customer-value-crm.dev/problems/";

/** A client calling `baseUrl` (the gateway) with an API key (`X-API-Key`). */
export function createCrmClient(baseUrl: string, apiKey: string, options: ClientOptions = {}): CrmClient {
  return createClient<paths>({ ...options, baseUrl, headers: { ...options.headers, "X-API-Key": apiKey } });
}

/** Every item of a cursor-paginated list: calls `page(cursor)` with each `next_cursor` until there is none. */
export async function* allItems<T>(
  page: (cursor: string | undefined) => Promise<{ items: T[]; next_cursor?: string | null }>,
): AsyncGenerator<T> {
  let cursor: string | undefined;
  do {
    const { items, next_cursor } = await page(cursor);
    yield* items;
    cursor = next_cursor ?? undefined;
  } while (cursor !== undefined);
}
