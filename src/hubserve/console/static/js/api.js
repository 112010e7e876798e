// Every data call of the console: the JSON APIs with the session's bearer token.
const KEY = "hubserve.token";

export const token = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An API failure: the server's {"error": {type, message, details}} plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.type = error.type || "HTTPError";
    this.details = error.details || [];
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(callback) { onUnauthorized = callback; }

function headers(extra = {}) {
  const value = token.get();
  return { ...(value ? { Authorization: `Bearer ${value}` } : {}), ...extra };
}

/** JSON in, JSON out; raises ApiError (and signs out on 401). */
export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { error: { message: text } }; }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  return parsed;
}

/** One invocation, as a client sees it: status, the raw text, the timing headers. */
export async function invoke(name, body) {
  const started = performance.now();
  const response = await fetch(`/endpoints/${encodeURIComponent(name)}`, {
    method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON: shown raw */ }
  return {
    status: response.status, ok: response.ok, text, json,
    clientMs: performance.now() - started,
    modelMs: response.headers.get("x-model-latency-ms"),
    overheadMs: response.headers.get("x-overhead-latency-ms"),
    coldStart: response.headers.get("x-cold-start"),
  };
}

export const enc = encodeURIComponent;
