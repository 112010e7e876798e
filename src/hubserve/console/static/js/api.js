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

/** Where an invocation goes: the endpoint, or one model of a multi-model endpoint (/endpoints/NAME/models/MODEL). */
export function invocationPath(name, model) {
  return `/endpoints/${encodeURIComponent(name)}${model ? `/models/${encodeURIComponent(model)}` : ""}`;
}

/** One invocation, as a client sees it: status, the raw text, the timing headers. */
export async function invoke(name, body, { model } = {}) {
  const started = performance.now();
  const response = await fetch(invocationPath(name, model), {
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

/**
 * One invocation as a stream of server-sent events (POST /endpoints/NAME with "stream": true), read as it
 * arrives through the response's ReadableStream. onEvent({event, data}) runs for each event (data parsed
 * as JSON when it is JSON); resolves to {status, ok, coldStart, error?, json?} once the stream ends. A
 * refusal before the stream (4xx/5xx) comes back as {ok: false, json} without events. `model` names one model of
 * a multi-model endpoint.
 */
export async function invokeStream(name, body, onEvent, { model } = {}) {
  const response = await fetch(invocationPath(name, model), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  const coldStart = response.headers.get("x-cold-start");
  if (!response.ok || !(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
    const text = await response.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON: shown raw */ }
    return { status: response.status, ok: response.ok, coldStart, text, json, streamed: false };
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = sseParser(onEvent);
  let error = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    error = parser(value) || error;
  }
  error = parser("\n\n", true) || error;
  return { status: response.status, ok: !error, coldStart, error, streamed: true };
}

/** Server-sent events from text chunks: data lines joined by newlines, comments skipped; returns an error event's data. */
function sseParser(onEvent) {
  let buffer = "", data = [], event = "";
  return (chunk, end = false) => {
    let text = buffer + chunk, keep = "";
    if (!end && text.endsWith("\r")) { keep = "\r"; text = text.slice(0, -1); } // a \r\n split across two chunks
    const lines = text.split(/\r\n|\r|\n/);
    buffer = end ? "" : lines.pop() + keep;
    let error = null;
    for (const line of lines) {
      if (line === "") {
        if (data.length) {
          const text = data.join("\n");
          let parsed = text;
          try { parsed = JSON.parse(text); } catch { /* plain text data */ }
          const name = event || "message";
          if (name === "error" || (parsed && typeof parsed.error === "string")) error = parsed;
          else onEvent({ event: name, data: parsed });
        }
        data = []; event = "";
      } else if (!line.startsWith(":")) {
        const at = line.indexOf(":");
        const field = at < 0 ? line : line.slice(0, at);
        let value = at < 0 ? "" : line.slice(at + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
      }
    }
    return error;
  };
}
