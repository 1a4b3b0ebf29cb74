// ReportWriter/write: a small Restate service written with Restate's TypeScript SDK, the drills' third
// reference target. It imports nothing of the drill kit and gives it no help: two model steps (`outline`,
// `draft`) and one file-writing step (`save_report`), each a durable `ctx.run`. Everything it needs comes
// from the environment:
//
//   HOST, PORT                  where it serves h2c (default 127.0.0.1:9082)
//   OPENAI_BASE_URL             the OpenAI-compatible base URL, …/v1 (the drills point it at their tap)
//   WRITER_MODEL                the model name sent (default smollm2)
//   LLM_TIMEOUT_S               the client timeout of one model request (default 60)
//   LLM_MAX_TOKENS              per answer (default 96: a 135M model writes short text)
//   LLM_MAX_CONCURRENCY         model requests in flight from this process (default 4, the local model's
//                               slots; 0: no limit); the others wait for a slot before they are sent
//   ALLOWED_ROOTS               where reports may go, separated by ":" (default /tmp)
//   TS_WRITER_TOOL_FAIL_FIRST   the first N executions of save_report in this process fail (retryable)
//   RESTATE_IDENTITY_KEY        when set (publickeyv1_…), only requests signed with its private key are served

import "./node20.js"; // first: the SDK needs Promise.withResolvers, which Node 20 lacks

import { createHash, randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import * as http2 from "node:http2";
import * as path from "node:path";

import * as restate from "@restatedev/restate-sdk";

interface WriteRequest {
  topic: string;
  output_dir: string;
}

interface SavedReport {
  path: string;
  bytes: number;
  sha256: string;
}

interface WriteResult extends SavedReport {
  topic: string;
  outline: string;
  draft: string;
}

// A setting the process cannot work with stops it at start, with one line naming the variable and value.
function die(message: string): never {
  console.error(`ts-writer: ${message}`);
  process.exit(2);
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    // A typo in a drill's hook must stop the process, not silently disable the fault.
    die(`environment ${name}=${JSON.stringify(raw)}: expected a non-negative integer`);
  }
  return value;
}

const HOST = process.env.HOST || "127.0.0.1";
const PORT = envInt("PORT", 9082);
const MODEL = process.env.WRITER_MODEL || "smollm2";
const LLM_TIMEOUT_MS = envInt("LLM_TIMEOUT_S", 60) * 1000;
const LLM_MAX_TOKENS = envInt("LLM_MAX_TOKENS", 96);
const LLM_MAX_CONCURRENCY = envInt("LLM_MAX_CONCURRENCY", 4);
const TOOL_FAIL_FIRST = envInt("TS_WRITER_TOOL_FAIL_FIRST", 0);
const ALLOWED_ROOTS = (process.env.ALLOWED_ROOTS || "/tmp")
  .split(":")
  .filter((root) => root !== "")
  .map((root) =>
    path.isAbsolute(root)
      ? path.resolve(root)
      : die(`environment ALLOWED_ROOTS: ${JSON.stringify(root)} is not an absolute path`),
  );
const IDENTITY_KEY = process.env.RESTATE_IDENTITY_KEY?.trim() || undefined;
if (IDENTITY_KEY && !IDENTITY_KEY.startsWith("publickeyv1_")) {
  die(`environment RESTATE_IDENTITY_KEY=${JSON.stringify(IDENTITY_KEY)}: expected publickeyv1_...`);
}

// Read once at start: a process without a model to ask must not serve (Restate would retry its steps
// forever against a deployment that can never run them).
const BASE_URL = (process.env.OPENAI_BASE_URL ?? "").replace(/\/+$/, "");
if (!/^https?:\/\/./.test(BASE_URL)) {
  die(
    `environment OPENAI_BASE_URL=${JSON.stringify(process.env.OPENAI_BASE_URL ?? null)}: ` +
      "expected the OpenAI-compatible base URL, e.g. http://127.0.0.1:8091/v1",
  );
}

// At most LLM_MAX_CONCURRENCY requests in flight; the others wait here in arrival order, before they are
// sent, so the client timeout measures the model and not its queue. Without it, 40 concurrent
// invocations (the storm drill) queued inside llama.cpp's 4 slots, requests timed out while queued and
// Restate retried them: 218 model requests for 80 model steps.
class Slots {
  private waiting: Array<() => void> = [];

  constructor(private free: number) {}

  async acquire(): Promise<() => void> {
    if (this.free > 0) {
      this.free -= 1;
    } else {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the oldest waiter
      else this.free += 1;
    };
  }
}

const slots = LLM_MAX_CONCURRENCY > 0 ? new Slots(LLM_MAX_CONCURRENCY) : undefined;

async function chat(prompt: string): Promise<string> {
  const waitStarted = Date.now();
  const release = slots ? await slots.acquire() : () => {};
  const waited = Date.now() - waitStarted;
  if (waited > 1000) console.log(`ts-writer: waited ${(waited / 1000).toFixed(1)} s for a model slot`);
  try {
    return await chatNow(prompt);
  } finally {
    release();
  }
}

// One chat completion. No client retries: a failure ends this attempt of the step and Restate retries it
// under its own policy (that is what the drills observe). The timeout bounds a model that accepts and
// never answers, so the attempt fails instead of hanging until Restate's inactivity timeout.
async function chatNow(prompt: string): Promise<string> {
  const url = `${BASE_URL}/chat/completions`;
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: MODEL,
      max_tokens: LLM_MAX_TOKENS,
      temperature: 0.2,
      messages: [{ role: "user", content: prompt }],
    }),
    signal: AbortSignal.timeout(LLM_TIMEOUT_MS),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`POST ${url} answered ${response.status}: ${text.slice(0, 300)}`);
  }
  let content: unknown;
  try {
    content = JSON.parse(text)?.choices?.[0]?.message?.content;
  } catch {
    throw new Error(`POST ${url} answered 200 with a body that is not JSON: ${text.slice(0, 300)}`);
  }
  if (typeof content !== "string") {
    throw new Error(`POST ${url} answered 200 without choices[0].message.content: ${text.slice(0, 300)}`);
  }
  return content.trim();
}

function within(dir: string, root: string): boolean {
  return dir === root || dir.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

// The lexical check: a pure function of the request (so it is deterministic on replay and may run
// outside a step), done before any model call so a bad request costs nothing.
function requestedDir(request: WriteRequest): string {
  const dir = request.output_dir;
  if (typeof dir !== "string" || !path.isAbsolute(dir)) {
    throw new restate.TerminalError(`output_dir ${JSON.stringify(dir)}: must be an absolute path`, { errorCode: 400 });
  }
  const normal = path.resolve(dir);
  if (!ALLOWED_ROOTS.some((root) => within(normal, root))) {
    throw new restate.TerminalError(
      `output_dir ${JSON.stringify(dir)} is outside the allowed roots (${ALLOWED_ROOTS.join(", ")})`,
      { errorCode: 400 },
    );
  }
  return normal;
}

// The deepest existing ancestor resolved through its symlinks, plus the part still to be created.
async function realDir(dir: string): Promise<string> {
  let existing = dir;
  const missing: string[] = [];
  for (;;) {
    try {
      return path.join(await fs.realpath(existing), ...missing);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || existing === path.dirname(existing)) throw error;
      missing.unshift(path.basename(existing));
      existing = path.dirname(existing);
    }
  }
}

async function realRoots(): Promise<string[]> {
  return Promise.all(ALLOWED_ROOTS.map((root) => fs.realpath(root).catch(() => root)));
}

// Checked again at write time, after symlinks: `/tmp/x -> /etc` passes the lexical check only.
// Node has no openat(2), so a folder swapped for a symlink between this check and the rename is not
// caught as the Python writer catches it; this target's job is to be drilled, not to be a sandbox.
async function containedDir(dir: string): Promise<string> {
  const roots = await realRoots();
  const before = await realDir(dir);
  if (!roots.some((root) => within(before, root))) {
    throw new restate.TerminalError(
      `output_dir ${dir} resolves to ${before}, outside the allowed roots (${roots.join(", ")})`,
    );
  }
  await fs.mkdir(before, { recursive: true });
  const after = await fs.realpath(before);
  if (!roots.some((root) => within(after, root))) {
    throw new restate.TerminalError(
      `output_dir ${dir} resolves to ${after}, outside the allowed roots (${roots.join(", ")})`,
    );
  }
  return after;
}

// Atomic (temporary file, fsync, rename, fsync of the folder: readers never see half a report) and
// idempotent (the name comes from the invocation id and the content from journaled results, so every
// execution of the step for one invocation writes the same bytes to the same file).
async function writeAtomically(dir: string, name: string, content: string): Promise<SavedReport> {
  const file = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await fs.open(tmp, "wx", 0o644);
  try {
    await handle.writeFile(content, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
  const folder = await fs.open(dir, "r");
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
  const bytes = Buffer.from(content, "utf8");
  return { path: file, bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
}

let saveExecutions = 0;

const reportWriter = restate.service({
  name: "ReportWriter",
  handlers: {
    write: async (ctx: restate.Context, request: WriteRequest): Promise<WriteResult> => {
      if (typeof request?.topic !== "string" || request.topic.trim() === "") {
        throw new restate.TerminalError(`topic ${JSON.stringify(request?.topic)}: must be a non-empty string`, {
          errorCode: 400,
        });
      }
      const topic = request.topic;
      const dir = requestedDir(request);

      const outline = await ctx.run("outline", () =>
        chat(`Write a three-point outline for a short report on: ${topic}. Answer with the three points only.`),
      );
      const draft = await ctx.run("draft", () =>
        chat(`Write a short report on: ${topic}. Follow this outline:\n${outline}`),
      );

      const content = `# ${topic}\n\n## Outline\n\n${outline}\n\n## Report\n\n${draft}\n`;
      const name = `report-${ctx.request().id}.md`;
      const saved = await ctx.run("save_report", async () => {
        saveExecutions += 1;
        if (saveExecutions <= TOOL_FAIL_FIRST) {
          // Retryable (a plain Error): Restate journals it as a transient error and runs the step again.
          // The count is in the message so each failure is a distinct error in Restate's journal events.
          throw new Error(
            `save_report failed on purpose: execution ${saveExecutions} of the first ${TOOL_FAIL_FIRST}` +
              " (TS_WRITER_TOOL_FAIL_FIRST)",
          );
        }
        return writeAtomically(await containedDir(dir), name, content);
      });
      return { topic, outline, draft, ...saved };
    },
  },
});

const handler = restate.createEndpointHandler({
  services: [reportWriter],
  ...(IDENTITY_KEY ? { identityKeys: [IDENTITY_KEY] } : {}),
});
const server = http2.createServer(handler);

// Restate keeps HTTP/2 streams open while an invocation runs, so server.close() alone could wait for
// minutes: on SIGTERM stop accepting, give open streams a moment, then exit whatever is left (Restate
// retries the interrupted attempts from their journals; that is what durability is for).
function shutdown(signal: NodeJS.Signals): void {
  console.log(`ts-writer: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);

server.on("error", (error) => {
  console.error(`ts-writer: cannot serve on ${HOST}:${PORT}: ${error.message}`);
  process.exit(1);
});
server.listen(PORT, HOST, () => {
  console.log(
    `ts-writer: ReportWriter on h2c http://${HOST}:${PORT}` +
      ` (model ${MODEL} at ${BASE_URL},` +
      ` ${LLM_MAX_CONCURRENCY || "unlimited"} model requests at a time,` +
      ` allowed roots ${ALLOWED_ROOTS.join(":")},` +
      ` ${IDENTITY_KEY ? "signed requests only" : "no request identity check"}` +
      (TOOL_FAIL_FIRST ? `, save_report fails its first ${TOOL_FAIL_FIRST} executions` : "") +
      ")",
  );
});
