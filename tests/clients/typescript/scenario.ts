// Drives the API through openapi-fetch, typed by `schema.d.ts`, which
// openapi-typescript generates from the server's own OpenAPI document.
// Usage: node dist/scenario.js BASE_URL TOKEN [--rate-limited]
// Prints `ok: STEP` per step; on the first failure `FAIL: STEP: why`, exit 1.
//
// Much of the test is in the types: `tsc` fails when the document lacks a
// parameter this file sends (`If-Match`, `If-None-Match`, `expand`, ...), a
// field it reads, or a response header it reads or asserts below.
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

// Node's `process`, declared here rather than pulling in @types/node.
declare const process: { argv: string[]; exit(code: number): never };

type Laptop = components["schemas"]["Laptop"];

// --- Response headers, as the document declares them ---------------------

// The header names a response declares: openapi-typescript adds
// `[name: string]: unknown` to every `headers`, which `keyof` would include.
type Declared<H> = [H] extends [never]
  ? never
  : keyof { [K in keyof H as string extends K ? never : number extends K ? never : K]: H[K] };
type Responses<O extends keyof operations> = operations[O]["responses"];
type HeadersOf<R> = R extends { headers: infer H } ? H : never;
// The operations whose response `S` lacks header `K` (or that have no `S`).
type Lacking<S extends number, K extends string, Only extends keyof operations = keyof operations> = {
  [O in Only]: S extends keyof Responses<O> ? (K extends Declared<HeadersOf<Responses<O>[S]>> ? never : O) : O;
}[Only];
type Creates = { [O in keyof operations]: 201 extends keyof Responses<O> ? O : never }[keyof operations];
// `tsc` reports "Type '"patch_laptop"' does not satisfy the constraint 'never'".
type NoneLacking<T extends never> = T;

export type DeclaredHeaders = [
  // As a path and a method:
  NoneLacking<"ETag" extends Declared<paths["/api/v1/laptops/{id}"]["patch"]["responses"][200]["headers"]> ? never : "patch 200">,
  NoneLacking<"Location" extends Declared<paths["/api/v1/laptops"]["post"]["responses"][201]["headers"]> ? never : "post 201">,
  // Over every operation of the document:
  NoneLacking<Lacking<429, "Retry-After">>,
  NoneLacking<Lacking<429, "RateLimit">>,
  NoneLacking<Lacking<429, "RateLimit-Policy">>,
  NoneLacking<Lacking<503, "Retry-After">>,
  NoneLacking<Lacking<401, "WWW-Authenticate">>,
  NoneLacking<Lacking<403, "WWW-Authenticate">>,
  NoneLacking<Lacking<201, "Location", Creates>>,
  NoneLacking<Lacking<201, "ETag", Creates>>,
  NoneLacking<Lacking<200, "ETag", "get_laptop" | "replace_laptop" | "patch_laptop" | "get_port" | "replace_port" | "patch_port">>,
  NoneLacking<Lacking<304, "ETag", "get_laptop" | "get_port">>,
  // Not vacuous: both creates answer 201.
  NoneLacking<Exclude<"create_laptop" | "create_port", Creates>>,
];

// Reads a response header that operation `op` declares for `status`:
// naming an undeclared header does not compile.
function header<O extends keyof operations, S extends keyof Responses<O> & number>(
  op: O,
  status: S,
  response: Response,
  name: Declared<HeadersOf<Responses<O>[S]>> & string,
): string {
  check(response.status === status, `${op}: expected ${status}, got ${response.status}`);
  const value = response.headers.get(name);
  check(value, `${op}: no ${name} header on ${status}`);
  return value;
}

// --- Steps -----------------------------------------------------------------

class Failure extends Error {}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Failure(message);
}

async function step<T>(name: string, body: () => Promise<T>): Promise<T> {
  try {
    const result = await body();
    console.log(`ok: ${name}`);
    return result;
  } catch (error) {
    const why = error instanceof Failure ? error.message : error instanceof Error ? error.stack : String(error);
    // fetch's "fetch failed" says why (connection refused, ...) in its cause.
    const cause = error instanceof Error && error.cause ? ` (cause: ${String(error.cause)})` : "";
    console.error(`FAIL: ${name}: ${why}${cause}`);
    process.exit(1);
  }
}

function expectStatus(response: Response, status: number, body: unknown, rateLimited: boolean): void {
  check(response.status === status, `expected ${status}, got ${response.status}: ${JSON.stringify(body)}`);
  if (rateLimited) {
    check(response.headers.get("RateLimit"), `no RateLimit header on ${status}`);
    check(response.headers.get("RateLimit-Policy"), `no RateLimit-Policy header on ${status}`);
  }
}

// --- The scenario ----------------------------------------------------------

const [baseUrl, token, ...flags] = process.argv.slice(2);
if (!baseUrl || !token || flags.some((f) => f !== "--rate-limited")) {
  console.error("usage: node dist/scenario.js BASE_URL TOKEN [--rate-limited]");
  process.exit(2);
}
const rateLimited = flags.includes("--rate-limited");
const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
const tag = `clients-ts-${Math.random().toString(36).slice(2, 14)}`;
// No test creates a port with this id.
const UNKNOWN_PORT_ID = Number.MAX_SAFE_INTEGER;

async function createLaptop(port_ids: number[]): Promise<{ laptop: Laptop; etag: string }> {
  const { data, error, response } = await api.POST("/api/v1/laptops", {
    body: { title: tag, model: "Scenario", port_ids },
  });
  expectStatus(response, 201, error, rateLimited);
  check(data, "201 without a laptop");
  const location = header("create_laptop", 201, response, "Location");
  check(location.endsWith(`/api/v1/laptops/${data.id}`), `Location ${location} does not name laptop ${data.id}`);
  return { laptop: data, etag: header("create_laptop", 201, response, "ETag") };
}

const port = await step("create port 201", async () => {
  const { data, error, response } = await api.POST("/api/v1/ports", { body: { name: tag } });
  expectStatus(response, 201, error, rateLimited);
  check(data, "201 without a port");
  check(header("create_port", 201, response, "Location").endsWith(`/api/v1/ports/${data.id}`), "Location names another port");
  header("create_port", 201, response, "ETag");
  return data;
});

const { laptop, etag: createdEtag } = await step("create laptop 201", async () => {
  const created = await createLaptop([port.id]);
  check(created.laptop.port_ids.join() === `${port.id}`, `port_ids ${created.laptop.port_ids}, expected [${port.id}]`);
  return created;
});

let etag = await step("get laptop 200", async () => {
  const { data, error, response } = await api.GET("/api/v1/laptops/{id}", { params: { path: { id: laptop.id } } });
  expectStatus(response, 200, error, rateLimited);
  check(data?.id === laptop.id && data.title === tag, `read ${JSON.stringify(data)}`);
  const read = header("get_laptop", 200, response, "ETag");
  check(read === createdEtag, `ETag ${read} differs from the one create sent, ${createdEtag}`);
  return read;
});

await step("get laptop expand=ports 200", async () => {
  const { data, error, response } = await api.GET("/api/v1/laptops/{id}", {
    params: { path: { id: laptop.id }, query: { expand: "ports" } },
  });
  expectStatus(response, 200, error, rateLimited);
  const ports = data?.ports;
  check(ports?.length === 1, `ports ${JSON.stringify(ports)}, expected one`);
  const [only] = ports;
  check(only?.id === port.id && only.name === port.name, `ports[0] ${JSON.stringify(only)}, expected ${port.name}`);
});

const ids = await step("list laptops, every page, limit=2", async () => {
  const ids = [laptop.id];
  for (let i = 0; i < 5; i++) ids.push((await createLaptop([])).laptop.id);
  const seen: number[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const { data, error, response } = await api.GET("/api/v1/laptops", {
      params: { query: { limit: 2, title: tag, cursor } },
    });
    expectStatus(response, 200, error, rateLimited);
    check(data, "200 without a page");
    pages++;
    check(data.items.length <= 2, `page ${pages} has ${data.items.length} items, limit was 2`);
    // Structural: an inlined copy of Laptop's schema compiles here too. That
    // is caught by the text of schema.d.ts (see ../README.md), not by tsc.
    const items: Laptop[] = data.items;
    seen.push(...items.map((item) => item.id));
    cursor = data.next_cursor ?? undefined;
    check(pages < 10, "more than 10 pages for 6 laptops");
  } while (cursor);
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b).join();
  check(sorted(seen) === sorted(ids), `pages held ${sorted(seen)}, expected ${sorted(ids)}`);
  check(pages >= 3, `${pages} pages for 6 laptops at 2 a page`);
  return ids;
});

const stale = etag;
etag = await step("conditional patch 200", async () => {
  const { data, error, response } = await api.PATCH("/api/v1/laptops/{id}", {
    params: { path: { id: laptop.id }, header: { "If-Match": etag } },
    // openapi-fetch sends application/json unless told.
    headers: { "Content-Type": "application/merge-patch+json" },
    body: { model: "Scenario, patched" },
  });
  expectStatus(response, 200, error, rateLimited);
  check(data?.model === "Scenario, patched", `model ${data?.model} after the patch`);
  const fresh = header("patch_laptop", 200, response, "ETag");
  check(fresh !== stale, `ETag ${fresh} unchanged by the patch`);
  return fresh;
});

await step("conditional patch 412", async () => {
  const { data, error, response } = await api.PATCH("/api/v1/laptops/{id}", {
    params: { path: { id: laptop.id }, header: { "If-Match": stale } },
    headers: { "Content-Type": "application/merge-patch+json" },
    body: { model: "lost update" },
  });
  expectStatus(response, 412, data, rateLimited);
  check(response.headers.get("Content-Type") === "application/problem+json", "412 is not a problem");
  check(error?.status === 412, `problem ${JSON.stringify(error)}`);
});

await step("conditional get 304", async () => {
  const { response } = await api.GET("/api/v1/laptops/{id}", {
    params: { path: { id: laptop.id }, header: { "If-None-Match": etag } },
  });
  expectStatus(response, 304, null, rateLimited);
  check(header("get_laptop", 304, response, "ETag") === etag, "304 sent another ETag");
});

await step("create invalid laptop 422", async () => {
  const { error, response } = await api.POST("/api/v1/laptops", {
    body: { title: " ", model: "Scenario", port_ids: [UNKNOWN_PORT_ID] },
  });
  expectStatus(response, 422, error, rateLimited);
  check(error?.status === 422, `problem ${JSON.stringify(error)}`);
  const fields = (error.errors ?? []).map((e) => e.field);
  check(fields.includes("title"), `errors name ${fields}, expected title`);
});

await step("create laptop naming an unknown port 422", async () => {
  const { error, response } = await api.POST("/api/v1/laptops", {
    body: { title: tag, model: "Scenario", port_ids: [UNKNOWN_PORT_ID] },
  });
  expectStatus(response, 422, error, rateLimited);
  const fields = (error?.errors ?? []).map((e) => e.field);
  check(fields.join() === "port_ids", `errors name ${fields}, expected port_ids`);
});

await step("conditional delete 204", async () => {
  const { error, response } = await api.DELETE("/api/v1/laptops/{id}", {
    params: { path: { id: laptop.id }, header: { "If-Match": etag } },
  });
  expectStatus(response, 204, error, rateLimited);
});

await step("get deleted laptop 404", async () => {
  const { error, response } = await api.GET("/api/v1/laptops/{id}", { params: { path: { id: laptop.id } } });
  expectStatus(response, 404, error, rateLimited);
  check(error?.status === 404, `problem ${JSON.stringify(error)}`);
});

await step("clean up", async () => {
  for (const id of ids.filter((id) => id !== laptop.id)) {
    const { response } = await api.DELETE("/api/v1/laptops/{id}", { params: { path: { id } } });
    expectStatus(response, 204, null, rateLimited);
  }
  const { response } = await api.DELETE("/api/v1/ports/{id}", { params: { path: { id: port.id } } });
  expectStatus(response, 204, null, rateLimited);
});
