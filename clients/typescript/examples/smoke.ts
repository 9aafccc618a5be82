/** Exercises the typed client against a running system (tests/e2e/test_typescript_client.py runs it):
 * posts events, reads a customer's composed view, pages a list by `next_cursor`, and reads a typed problem.
 *
 *   CRM_URL=http://localhost:8000 CRM_KEY=crm_... CRM_SOURCE=shop-ts node dist/examples/smoke.js
 *
 * Prints one JSON line of what it saw; exits non-zero on any unexpected answer. */
import { allItems, createCrmClient, type PartnerEvent, type Schemas } from "../src/index.js";

declare const process: { env: Record<string, string | undefined>; exitCode?: number };

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

const client = createCrmClient(env("CRM_URL"), env("CRM_KEY"));
const source = env("CRM_SOURCE");
const subjects = ["C-1", "C-2", "C-3"];

function order(subject: string, n: number): PartnerEvent {
  return {
    specversion: "1.0", id: `${source}-order-${n}`, source, type: "order.completed", subject,
    time: new Date().toISOString(),
    data: { order_id: `O-${n}`, amount: "59.90", currency: "EUR", channel: "web" },
  };
}

// Post an event batch: the answer is typed per item.
const posted = await client.POST("/v1/events", { body: subjects.map((s, i) => order(s, i)) });
if (!posted.data) throw new Error(`POST /v1/events: ${posted.response.status} ${JSON.stringify(posted.error)}`);
const accepted: number = posted.data.accepted;

// A rejected event: the 422 problem carries `results`, typed, and its `type` is one of the listed problem types.
const bad = { ...order("C-1", 99), data: { order_id: "O-99", amount: "-1", currency: "EUR" } };
const rejected = await client.POST("/v1/events", { body: [bad] });
if (rejected.response.status !== 422 || !rejected.error) throw new Error(`expected 422, got ${rejected.response.status}`);
const problem = rejected.error;
if (problem.type !== "https://customer-value-crm.dev/problems/events-rejected") throw new Error(`got ${problem.type}`);
const problemType = problem.type;
// Narrowed by its `type`: only this problem carries `results`.
const reasons = (problem.results ?? []).filter((r) => r.status === "rejected").map((r) => r.reason ?? "");

// Page the partner's customers two at a time, following `next_cursor` to the end.
let pages = 0;
const ids: string[] = [];
for await (const customer of allItems(async (cursor) => {
  pages += 1;
  const { data, error, response } = await client.GET("/v1/customers", {
    params: { query: { partner: source, limit: 2, ...(cursor ? { cursor } : {}) } },
  });
  if (!data) throw new Error(`GET /v1/customers: ${response.status} ${JSON.stringify(error)}`);
  return data;
})) {
  ids.push(customer.customer_id);
}

// Read the composed view of one of them by its partner id.
const found = await client.GET("/v1/customers", { params: { query: { source, external_id: "C-2" } } });
const customerId = found.data?.items[0]?.customer_id;
if (!customerId) throw new Error(`no customer for ${source}/C-2: ${JSON.stringify(found.error ?? found.data)}`);
const view = await client.GET("/v1/customers/{customer_id}", { params: { path: { customer_id: customerId } } });
if (!view.data) throw new Error(`GET /v1/customers/${customerId}: ${view.response.status} ${JSON.stringify(view.error)}`);
const profile: Schemas["CustomerProfileRead"] = view.data.profile;
const totals = profile.purchase_totals.map((t) => `${t.total_spend} ${t.currency}`);

// A typed 404: the problem's `type` is the listed `not-found`.
const missing = await client.GET("/v1/customers/{customer_id}", {
  params: { path: { customer_id: "00000000-0000-4000-8000-000000000000" } },
});

console.log(JSON.stringify({
  accepted, problemType, reasons, pages, ids,
  view: { customer_id: view.data.customer_id, profile_customer_id: profile.customer_id, purchase_count: profile.purchase_count,
          totals, absent: view.data.absent ?? {}, sources: Object.keys(view.data.sources) },
  missing: { status: missing.response.status, type: missing.error?.type },
}));
