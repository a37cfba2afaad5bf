/* The try-it page's script, inlined into index.html by pyexec/page.py and allowed by
   its hash (the CSP allows no other script). It speaks the same contract as every
   client (docs/api.md): it sends POST /execute and reads GET /runtime and
   GET /openapi.json, on this origin only. Everything that came from a script is put
   on the page as text (textContent), never as HTML. */
(function () {
  "use strict";

  const SCRIPT_STORE = "pyexec.script";
  const KEY_STORE = "pyexec.api_key";
  const RETRY_KINDS = new Map([
    ["overloaded", "busy"],
    ["shutting_down", "busy"],
    ["starting", "starting"],
  ]);
  const MAX_RETRIES = 3;
  const INLINE_IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/svg+xml"]);
  const LIMITS = [
    { field: "timeout_seconds", id: "timeout-seconds", unit: "s" },
    { field: "cpu_seconds", id: "cpu-seconds", unit: "s" },
    { field: "memory_mb", id: "memory-mb", unit: "MB" },
  ];
  // Fields of an answer that have a place of their own; any other is listed as a detail.
  const SHOWN = new Set([
    "error", "kind", "result", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
    "usage", "limits", "files", "files_collected", "exception", "traceback", "traceback_text",
  ]);

  const EXAMPLES = {
    hello: {
      script: `def main():
    print("Hello from the sandbox")
    return {"hello": "world"}
`,
    },
    pandas: {
      script: `import pandas as pd


def main():
    sales = pd.DataFrame(
        {
            "region": ["north", "south", "north", "east", "south"],
            "units": [12, 7, 5, 9, 3],
            "price": [2.5, 3.0, 2.5, 4.0, 3.0],
        }
    )
    sales["revenue"] = sales["units"] * sales["price"]
    print(sales.describe())
    # A DataFrame is not JSON: coerce_result turns it into a list of records.
    return sales.groupby("region")[["units", "revenue"]].sum()
`,
      coerce_result: true,
    },
    chart: {
      script: `import matplotlib.pyplot as plt


def main():
    xs = list(range(11))
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(xs, [x * x for x in xs], marker="o")
    ax.set(title="Squares", xlabel="x", ylabel="x squared")
    fig.tight_layout()
    # Sent back with the answer: "Files to return" is *.png.
    fig.savefig("chart.png", dpi=100)
    print(f"plotted {len(xs)} points")
    return {"points": len(xs), "largest": xs[-1] ** 2}
`,
      output_files: "*.png",
    },
    error: {
      script: `def average(values):
    return sum(values) / len(values)


def main():
    print("averaging an empty list")
    return average([])
`,
    },
    timeout: {
      script: `import time


def main():
    print("sleeping longer than the 2 s limit")
    time.sleep(30)
`,
      timeout_seconds: "2",
    },
  };

  const $ = (id) => document.getElementById(id);
  const editor = $("script");
  const gutter = $("gutter");
  const runButton = $("run");
  const cancelButton = $("cancel");
  const keyInput = $("api-key");

  let running = null; // the AbortController of the run in progress
  let errorLine = 0; // the script's line the last failure points at (0: none)
  let gutterLines = 0;
  let escaped = false; // Esc was pressed: the next Tab leaves the editor
  let runtimeKnown = false;
  let objectUrls = [];

  // --- storage: the script in local storage, the key in this tab's session only ---

  function stored(storage, name) {
    try {
      return storage.getItem(name);
    } catch (error) {
      return null; // storage turned off
    }
  }

  function store(storage, name, value) {
    try {
      if (value) {
        storage.setItem(name, value);
      } else {
        storage.removeItem(name);
      }
    } catch (error) {
      // storage turned off or full: the page works without it
    }
  }

  function apiKey() {
    return keyInput.value.trim();
  }

  function showKeyBox(focus) {
    $("key-box").hidden = false;
    if (focus) {
      keyInput.focus();
    }
  }

  // --- the editor: line numbers, the failing line, Tab and Esc ---

  function renderGutter() {
    const count = editor.value.split("\n").length;
    if (count === gutterLines && !gutter.dataset.stale) {
      return;
    }
    gutterLines = count;
    delete gutter.dataset.stale;
    gutter.textContent = "";
    let plain = "";
    for (let n = 1; n <= count; n += 1) {
      if (n === errorLine) {
        gutter.append(plain);
        plain = "";
        const mark = document.createElement("span");
        mark.className = "bad";
        mark.textContent = String(n);
        gutter.append(mark, "\n");
      } else {
        plain += n + "\n";
      }
    }
    gutter.append(plain);
  }

  function placeErrorLine() {
    const bar = $("error-line");
    if (!errorLine || errorLine > gutterLines) {
      bar.hidden = true;
      delete bar.dataset.line;
      return;
    }
    const style = getComputedStyle(editor);
    const lineHeight = parseFloat(style.lineHeight);
    const top = parseFloat(style.paddingTop) + (errorLine - 1) * lineHeight - editor.scrollTop;
    bar.style.top = top + "px";
    bar.dataset.line = String(errorLine);
    bar.hidden = false;
  }

  function markLine(line) {
    errorLine = line;
    gutter.dataset.stale = "1";
    renderGutter();
    placeErrorLine();
  }

  function lineRange(line) {
    const lines = editor.value.split("\n");
    let start = 0;
    for (let n = 1; n < line && n <= lines.length; n += 1) {
      start += lines[n - 1].length + 1;
    }
    return [start, start + (lines[line - 1] || "").length];
  }

  function showLineInEditor() {
    if (!errorLine) {
      return;
    }
    const [start, end] = lineRange(errorLine);
    editor.focus();
    editor.setSelectionRange(start, end);
    const lineHeight = parseFloat(getComputedStyle(editor).lineHeight);
    editor.scrollTop = Math.max(0, (errorLine - 1) * lineHeight - editor.clientHeight / 2);
  }

  function replaceRange(from, to, text) {
    editor.focus();
    editor.setSelectionRange(from, to);
    // insertText keeps the browser's undo history; setRangeText is the fallback.
    if (!document.execCommand("insertText", false, text)) {
      editor.setRangeText(text, from, to, "end");
      edited();
    }
  }

  function selectedLines() {
    const { selectionStart: start, selectionEnd: end, value } = editor;
    const from = value.lastIndexOf("\n", start - 1) + 1;
    // A selection that ends at the start of a line does not take that line.
    const last = end > start && value[end - 1] === "\n" ? end - 1 : end;
    const next = value.indexOf("\n", last);
    return [from, next === -1 ? value.length : next];
  }

  function indent(outdent) {
    const { selectionStart: start, selectionEnd: end, value } = editor;
    if (!outdent && !value.slice(start, end).includes("\n")) {
      replaceRange(start, end, "    ");
      return;
    }
    const [from, to] = selectedLines();
    const lines = value.slice(from, to).split("\n");
    const changed = lines
      .map((line) => (outdent ? line.replace(/^( {1,4}|\t)/, "") : "    " + line))
      .join("\n");
    if (changed !== value.slice(from, to)) {
      replaceRange(from, to, changed);
      editor.setSelectionRange(from, from + changed.length);
    }
  }

  function onEditorKey(event) {
    if (event.key === "Escape") {
      escaped = true;
      return;
    }
    if (event.key === "Tab" && !escaped && !event.ctrlKey && !event.altKey && !event.metaKey) {
      event.preventDefault();
      indent(event.shiftKey);
      return;
    }
    if (!["Shift", "Control", "Alt", "Meta"].includes(event.key)) {
      escaped = false;
    }
  }

  function edited() {
    store(localStorage, SCRIPT_STORE, editor.value);
    if (errorLine) {
      errorLine = 0; // the line may have moved
      gutter.dataset.stale = "1";
    }
    renderGutter();
    placeErrorLine();
  }

  // --- the request ---

  class Problem extends Error {}

  function base64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  function fromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes;
  }

  async function fileEntry(file) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (!bytes.includes(0)) {
      try {
        const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
        return { path: file.name, content: text, encoding: "utf-8" };
      } catch (error) {
        // not UTF-8: sent as base64
      }
    }
    return { path: file.name, content: base64(bytes), encoding: "base64" };
  }

  async function requestBody() {
    const body = { script: editor.value };
    const input = $("input").value.trim();
    if (input !== "") {
      try {
        body.input = JSON.parse(input);
      } catch (error) {
        throw new Problem("Input is not JSON: " + error.message);
      }
    }
    const chosen = Array.from($("files").files);
    if (chosen.length) {
      body.files = await Promise.all(chosen.map(fileEntry));
    }
    const patterns = $("output-files")
      .value.split("\n")
      .map((pattern) => pattern.trim())
      .filter((pattern) => pattern !== "");
    if (patterns.length) {
      body.output_files = patterns;
    }
    if ($("coerce-result").checked) {
      body.coerce_result = true;
    }
    for (const limit of LIMITS) {
      const raw = $(limit.id).value.trim();
      if (raw !== "") {
        const value = Number(raw);
        if (!Number.isFinite(value)) {
          throw new Problem(limit.field + " must be a number.");
        }
        body[limit.field] = value;
      }
    }
    return body;
  }

  function headers(json) {
    const sent = {};
    if (json) {
      sent["Content-Type"] = "application/json";
    }
    if (apiKey()) {
      sent["X-API-Key"] = apiKey();
    }
    return sent;
  }

  // Relative paths: the page works behind a proxy that serves the API under a prefix.
  async function call(path, options) {
    const response = await fetch(path, { ...options, cache: "no-store", credentials: "same-origin" });
    const text = await response.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch (error) {
      body = null;
    }
    return { status: response.status, retryAfter: response.headers.get("Retry-After"), body, text };
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  function wait(seconds, word, attempt, signal) {
    return new Promise((resolve, reject) => {
      let left = seconds;
      const tell = () =>
        setStatus(`Server ${word}, retrying in ${left} s (retry ${attempt} of ${MAX_RETRIES}).`);
      tell();
      const timer = setInterval(() => {
        left -= 1;
        if (left <= 0) {
          clearInterval(timer);
          resolve();
        } else {
          tell();
        }
      }, 1000);
      signal.addEventListener("abort", () => {
        clearInterval(timer);
        reject(new DOMException("Cancelled", "AbortError"));
      });
    });
  }

  async function run() {
    if (running) {
      return;
    }
    let body;
    try {
      body = await requestBody();
    } catch (error) {
      if (!(error instanceof Problem)) {
        throw error;
      }
      showProblem(error.message);
      return;
    }
    const controller = new AbortController();
    running = controller;
    runButton.disabled = true;
    cancelButton.hidden = false;
    setStatus("Running…");
    const started = performance.now();
    try {
      for (let attempt = 1; ; attempt += 1) {
        const answer = await call("execute", {
          method: "POST",
          headers: headers(true),
          body: JSON.stringify(body),
          signal: controller.signal,
        });
        const kind = answer.body && answer.body.kind;
        if (answer.status === 503 && RETRY_KINDS.has(kind) && attempt <= MAX_RETRIES) {
          const seconds = Math.min(30, Math.max(1, parseInt(answer.retryAfter, 10) || 1));
          await wait(seconds, RETRY_KINDS.get(kind), attempt, controller.signal);
          setStatus("Running…");
          continue;
        }
        const took = performance.now() - started;
        setStatus(`Answered in ${took < 1000 ? `${Math.round(took)} ms` : `${(took / 1000).toFixed(1)} s`}.`);
        showAnswer(answer);
        if (answer.status !== 401 && !runtimeKnown) {
          loadRuntime();
        }
        break;
      }
    } catch (error) {
      if (controller.signal.aborted) {
        setStatus("Cancelled.");
      } else {
        showProblem("Could not reach the server: " + error.message);
      }
    } finally {
      running = null;
      runButton.disabled = false;
      cancelButton.hidden = true;
    }
  }

  // --- the answer ---

  function clearAnswer() {
    for (const url of objectUrls) {
      URL.revokeObjectURL(url);
    }
    objectUrls = [];
    for (const id of ["failure", "failure-line", "failure-details", "traceback", "result-box",
      "files-box", "usage-box", "stdout-truncated", "stderr-truncated"]) {
      $(id).hidden = true;
    }
    for (const id of ["result", "stdout", "stderr", "traceback", "failure-details",
      "returned-files", "failure-kind", "failure-message", "failure-line-text"]) {
      $(id).textContent = "";
    }
    markLine(0);
  }

  function setSummary(text, good) {
    // Counts the answers shown, for whoever waits for the next one (the browser tests).
    document.body.dataset.answers = String(Number(document.body.dataset.answers || 0) + 1);
    const summary = $("summary");
    summary.textContent = text;
    summary.className = "summary " + (good ? "ok" : "bad");
  }

  function showProblem(message) {
    clearAnswer();
    setStatus("");
    setSummary(message, false);
  }

  function showAnswer(answer) {
    clearAnswer();
    const body = answer.body;
    if (!body || typeof body !== "object" || Array.isArray(body)) {
      setSummary(`HTTP ${answer.status}: the answer is not JSON.`, false);
      $("stdout").textContent = answer.text.slice(0, 4000);
      return;
    }
    if (answer.status === 200 && "result" in body) {
      setSummary(`main() returned (${answer.status}).`, true);
      $("result").textContent = JSON.stringify(body.result, null, 2);
      $("result-box").hidden = false;
    } else {
      showFailure(answer.status, body);
    }
    $("stdout").textContent = typeof body.stdout === "string" ? body.stdout : "";
    $("stderr").textContent = typeof body.stderr === "string" ? body.stderr : "";
    $("stdout-truncated").hidden = body.stdout_truncated !== true;
    $("stderr-truncated").hidden = body.stderr_truncated !== true;
    showUsage(body);
    showFiles(body);
  }

  function failingLine(body) {
    if (body.kind === "syntax_error" && Number.isInteger(body.line)) {
      return { line: body.line, where: "", code: body.code || "" };
    }
    const frames = Array.isArray(body.traceback) ? body.traceback : [];
    const own = frames.filter((frame) => frame && frame.file === "script");
    if (!own.length || !Number.isInteger(own[own.length - 1].line)) {
      return null;
    }
    const frame = own[own.length - 1];
    return { line: frame.line, where: ` in ${frame.function}`, code: frame.code || "" };
  }

  function showFailure(status, body) {
    const kind = typeof body.kind === "string" ? body.kind : "error";
    setSummary(`${kind} (${status})`, false);
    $("failure-kind").textContent = kind;
    $("failure-message").textContent = typeof body.error === "string" ? body.error : "";
    $("failure").hidden = false;
    if (status === 401) {
      showKeyBox(true);
      setStatus("Enter the API key, then run again.");
    }
    const found = failingLine(body);
    if (found) {
      $("failure-line-text").textContent =
        `Line ${found.line} of the script${found.where}: ${found.code.trim()}`;
      $("failure-line").hidden = false;
      markLine(found.line);
    }
    const details = $("failure-details");
    for (const [name, value] of Object.entries(body)) {
      if (SHOWN.has(name)) {
        continue;
      }
      const term = document.createElement("dt");
      term.textContent = name;
      const text = document.createElement("dd");
      text.textContent = typeof value === "string" ? value : JSON.stringify(value);
      details.append(term, text);
      details.hidden = false;
    }
    if (typeof body.traceback_text === "string") {
      $("traceback").textContent = body.traceback_text;
      $("traceback").hidden = false;
    }
  }

  function milliseconds(value) {
    return typeof value === "number" ? `${value.toFixed(1)} ms` : "";
  }

  function showUsage(body) {
    const usage = body.usage || {};
    const limits = body.limits || {};
    if (!body.usage && !body.limits) {
      return;
    }
    $("used-wall").textContent = milliseconds(usage.wall_time_ms);
    $("used-cpu").textContent = milliseconds(usage.cpu_time_ms);
    $("used-memory").textContent =
      typeof usage.peak_memory_bytes === "number"
        ? `${(usage.peak_memory_bytes / 1048576).toFixed(1)} MB`
        : "";
    $("limit-wall").textContent = limits.timeout_seconds != null ? `${limits.timeout_seconds} s` : "";
    $("limit-cpu").textContent = limits.cpu_seconds != null ? `${limits.cpu_seconds} s` : "";
    $("limit-memory").textContent = limits.memory_mb != null ? `${limits.memory_mb} MB` : "";
    $("usage-box").hidden = false;
  }

  function objectUrl(bytes, type) {
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    objectUrls.push(url);
    return url;
  }

  function showFiles(body) {
    if (!Array.isArray(body.files)) {
      return;
    }
    const list = $("returned-files");
    $("files-note").textContent =
      body.files_collected === false
        ? "(none: the run was stopped before they were collected)"
        : `(${body.files.length})`;
    for (const entry of body.files) {
      const item = document.createElement("li");
      const name = document.createElement("code");
      name.textContent = entry.path;
      item.append(name, ` ${entry.size} bytes`);
      if (entry.omitted) {
        item.append(`, not sent: ${entry.omitted}`);
      } else {
        item.append(`, ${entry.mime_type} `);
        const bytes = entry.encoding === "base64"
          ? fromBase64(entry.content)
          : new TextEncoder().encode(entry.content);
        const link = document.createElement("a");
        const base = String(entry.path).split("/").pop();
        // application/octet-stream: opened rather than saved, it is never run as a page.
        link.href = objectUrl(bytes, "application/octet-stream");
        link.download = base;
        link.textContent = `Download ${base}`;
        item.append(link);
        if (INLINE_IMAGES.has(entry.mime_type)) {
          const image = document.createElement("img");
          image.alt = `Image returned by the script: ${entry.path}`;
          // SVG as a data: URL, whose origin is opaque: opened on its own, its scripts
          // could not reach this page. Raster images from a blob of their type.
          image.src = entry.mime_type === "image/svg+xml"
            ? "data:image/svg+xml;base64," + base64(bytes)
            : objectUrl(bytes, entry.mime_type);
          item.append(image);
        }
      }
      list.append(item);
    }
    $("files-box").hidden = false;
  }

  // --- the server's limits and runtime ---

  function setLimit(limit, range) {
    const input = $(limit.id);
    const parts = [];
    if (range.default != null) {
      input.placeholder = String(range.default);
      parts.push(`default ${range.default}`);
    }
    if (range.maximum != null) {
      input.max = String(range.maximum);
      parts.push(`at most ${range.maximum}`);
    }
    $(limit.id + "-range").textContent = parts.length ? `(${parts.join(", ")})` : "";
  }

  async function loadRuntime() {
    const runtime = $("runtime");
    try {
      const answer = await call("runtime", { headers: headers(false) });
      const body = answer.body;
      if (answer.status === 200 && body && body.limits) {
        runtimeKnown = true;
        for (const limit of LIMITS) {
          setLimit(limit, body.limits[limit.field] || {});
        }
        const packages = (body.packages || []).map((p) => `${p.name} ${p.version}`).join(", ");
        const preimported = (body.preimported || []).join(", ") || "none";
        runtime.textContent =
          `The sandbox: Python ${body.python}, with ${packages}; pre-imported: ${preimported}.`;
        return;
      }
      if (answer.status === 401) {
        showKeyBox(false);
        runtime.textContent = "Enter the API key to see the sandbox's Python, packages and limits.";
      } else {
        runtime.textContent = body && body.error ? `The sandbox: ${body.error}` : "";
        if (body && body.kind === "starting") {
          // The self-test still runs: ask again when the server says to.
          const seconds = Math.min(30, Math.max(1, parseInt(answer.retryAfter, 10) || 2));
          setTimeout(() => runtimeKnown || loadRuntime(), seconds * 1000);
        }
      }
      // The OpenAPI document is open to all and carries this server's maxima.
      const openapi = await call("openapi.json", {});
      const request = openapi.body?.components?.schemas?.request?.properties;
      if (request) {
        for (const limit of LIMITS) {
          setLimit(limit, { maximum: request[limit.field]?.maximum });
        }
      }
    } catch (error) {
      runtime.textContent = "Could not reach the server: " + error.message;
    }
  }

  // --- examples ---

  function loadExample() {
    const example = EXAMPLES[$("example").value];
    editor.value = example.script;
    $("input").value = example.input || "";
    $("output-files").value = example.output_files || "";
    $("coerce-result").checked = Boolean(example.coerce_result);
    for (const limit of LIMITS) {
      $(limit.id).value = example[limit.field] || "";
    }
    if (example.output_files || example.coerce_result || example.timeout_seconds) {
      $("options").open = true;
    }
    edited();
    setStatus(`Loaded the example: ${$("example").selectedOptions[0].textContent}.`);
  }

  // --- wiring ---

  editor.addEventListener("keydown", onEditorKey);
  editor.addEventListener("blur", () => {
    escaped = false;
  });
  editor.addEventListener("input", edited);
  editor.addEventListener("scroll", () => {
    gutter.scrollTop = editor.scrollTop;
    placeErrorLine();
  });
  keyInput.addEventListener("input", () => store(sessionStorage, KEY_STORE, apiKey()));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    }
  });
  runButton.addEventListener("click", run);
  cancelButton.addEventListener("click", () => running && running.abort());
  $("load-example").addEventListener("click", loadExample);
  $("show-line").addEventListener("click", showLineInEditor);
  $("files").addEventListener("change", () => {
    const chosen = Array.from($("files").files);
    $("files-chosen").textContent = chosen.length
      ? chosen.map((file) => `${file.name} (${file.size} bytes)`).join(", ")
      : "No files chosen.";
  });

  const key = stored(sessionStorage, KEY_STORE);
  if (key) {
    keyInput.value = key;
    showKeyBox(false);
  }
  editor.value = stored(localStorage, SCRIPT_STORE) || EXAMPLES.hello.script;
  renderGutter();
  loadRuntime();
})();
