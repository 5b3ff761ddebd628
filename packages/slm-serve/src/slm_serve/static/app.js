// The slm playground's behaviour: chat (or text continuation) with streamed replies, each
// token coloured by its probability with its runners-up on hover, and a "look inside" view of
// the last reply (surprise per token, one head's attention map on a canvas).
//
// It talks to the server's OpenAI-compatible routes (/v1/chat/completions for chat runs,
// /v1/completions for plain ones) and to slm's own /v1/slm/model and /v1/slm/inspect
// (look_inside.py). No framework: a few functions per concept, in the order a reply flows.
"use strict";

const $ = (id) => document.getElementById(id);
const TOP_ALTERNATIVES = 5;

const state = {
  model: null, // /v1/slm/model: id, chat, context_length, n_layer, n_head
  history: [], // chat messages so far (user and assistant turns)
  controller: null, // aborts the reply being streamed
  last: null, // the last exchange: {messages | prompt, reply}
};

// ------------------------------------------------------------------ talking to the server
function headers() {
  const result = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

async function errorMessage(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = (body.error && body.error.message) || body.detail || message;
    if (body.error && body.error.code === "context_length_exceeded") {
      message += " (New chat starts again with an empty context)";
    }
  } catch (_) {
    // not JSON: the status line says enough
  }
  if (response.status === 401) message += " (enter the server's API key under the settings)";
  return message;
}

async function postJSON(path, body, signal) {
  const response = await fetch(path, {
    method: "POST", headers: headers(), body: JSON.stringify(body), signal,
  });
  if (!response.ok) throw new Error(await errorMessage(response));
  return response;
}

// Server-sent events: yields each `data:` payload as parsed JSON until [DONE].
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let match;
    while ((match = /\r?\n\r?\n/.exec(buffer))) {
      const event = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const data = event.split(/\r?\n/).filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
      if (data === "[DONE]") return;
      if (data) yield JSON.parse(data);
    }
  }
}

// One streamed chunk as {text, tokens: [{token, p, top: [{token, p}]}]}, from either the
// chat format (delta + logprobs.content) or the completions one (text + logprobs lists).
function pieces(chunk) {
  if (chunk.error) throw new Error(chunk.error.message || "the server stopped the reply");
  const choice = chunk.choices && chunk.choices[0];
  if (!choice) return { text: "", tokens: [] };
  if (choice.delta !== undefined) {
    const content = (choice.logprobs && choice.logprobs.content) || [];
    return {
      text: choice.delta.content || "",
      tokens: content.map((t) => ({
        token: t.token, p: Math.exp(t.logprob),
        top: (t.top_logprobs || []).map((a) => ({ token: a.token, p: Math.exp(a.logprob) })),
      })),
    };
  }
  const lp = choice.logprobs;
  if (!lp || !lp.tokens) return { text: choice.text || "", tokens: [] };
  return {
    text: choice.text || "",
    tokens: lp.tokens.map((token, i) => ({
      token, p: Math.exp(lp.token_logprobs[i]),
      top: Object.entries((lp.top_logprobs && lp.top_logprobs[i]) || {})
        .map(([alt, logprob]) => ({ token: alt, p: Math.exp(logprob) })),
    })),
  };
}

function sampling() {
  const body = {
    model: state.model.id,
    temperature: Number($("temperature").value),
    top_p: Number($("top_p").value),
    stream: true,
  };
  // empty: the server lets the reply fill what the conversation leaves of the context
  if ($("max_tokens").value !== "") body.max_tokens = Number($("max_tokens").value);
  const topK = Number($("top_k").value);
  if (topK > 0) body.top_k = topK;
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  return body;
}

// What to send for the next reply, and what look-inside needs to read it back.
function request(text) {
  if (state.model.chat) {
    const system = $("system").value.trim();
    const messages = (system ? [{ role: "system", content: system }] : [])
      .concat(state.history, [{ role: "user", content: text }]);
    return {
      path: "/v1/chat/completions",
      body: { ...sampling(), messages, logprobs: true, top_logprobs: TOP_ALTERNATIVES },
      exchange: { messages },
    };
  }
  return {
    path: "/v1/completions",
    body: { ...sampling(), prompt: text, logprobs: TOP_ALTERNATIVES },
    exchange: { prompt: text },
  };
}

// ------------------------------------------------------------------ drawing the conversation
function addMessage(role, text) {
  const message = document.createElement("div");
  message.className = `message ${role}`;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = { user: "you", assistant: "model", prompt: "your text" }[role];
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  message.append(who, body);
  $("messages").append(message);
  $("messages").scrollTop = $("messages").scrollHeight;
  return message;
}

// Probability 0 is red, 1 green, through yellow: the colour of a token on the page.
function probabilityColour(p) {
  return `hsl(${Math.round(120 * p)}, ${75 - 20 * p}%, 80%)`;
}

function tokenSpan(token) {
  const span = document.createElement("span");
  span.className = "tok";
  span.textContent = token.token;
  span.style.backgroundColor = probabilityColour(token.p);
  span.tokenInfo = token;
  return span;
}

// Adds a chunk's text to the reply, one span per token. A token that ends inside a character
// brings no text of its own (the server holds the bytes until the character is whole), so it
// waits in `pending` and shares one span with the tokens that complete the character; that
// span's probability is theirs together.
function appendPiece(body, piece, pending) {
  const spelled = piece.tokens.map((t) => t.token).join("");
  if (!pending.length && piece.tokens.length && spelled === piece.text) {
    body.append(...piece.tokens.map(tokenSpan));
    return;
  }
  pending.push(...piece.tokens);
  if (!piece.text) return;
  if (!pending.length) {
    body.append(document.createTextNode(piece.text));
    return;
  }
  const p = pending.reduce((product, t) => product * t.p, 1);
  body.append(tokenSpan({ ...pending[0], token: piece.text, p, parts: pending.length }));
  pending.length = 0;
}

function visible(token) {
  return token.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5").replace(/\t/g, "\u2192");
}

function showAlternatives(span) {
  const info = span.tokenInfo;
  const tip = $("tooltip");
  tip.replaceChildren();
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = info.parts > 1
    ? `${info.parts} tokens, together p = ${(100 * info.p).toFixed(1)}%; the first one's top choices:`
    : `chosen with p = ${(100 * info.p).toFixed(1)}%; the top choices were:`;
  tip.append(title);
  // the sampled token may be outside the top choices (at a temperature above 0): shown last
  const top = info.top.some((alt) => alt.token === info.token)
    ? info.top : info.top.concat([{ token: info.token, p: info.p }]);
  for (const alt of top) {
    const row = document.createElement("div");
    row.className = alt.token === info.token ? "row chosen" : "row";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = visible(alt.token);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(2, 100 * alt.p)}%`;
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = `${(100 * alt.p).toFixed(1)}%`;
    row.append(name, bar, pct);
    tip.append(row);
  }
  placeTooltip(span.getBoundingClientRect());
}

function placeTooltip(rect) {
  const tip = $("tooltip");
  tip.hidden = false;
  const left = Math.min(rect.left, window.innerWidth - tip.offsetWidth - 8);
  tip.style.left = `${window.scrollX + Math.max(4, left)}px`;
  tip.style.top = `${window.scrollY + rect.bottom + 6}px`;
}

// ------------------------------------------------------------------ one reply
function setBusy(busy) {
  document.body.dataset.state = busy ? "streaming" : "ready";
  $("send").disabled = busy;
  $("stop").hidden = !busy;
  $("new-chat").disabled = busy;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function send(text) {
  const { path, body, exchange } = request(text);
  showError("");
  addMessage(state.model.chat ? "user" : "prompt", text);
  const message = addMessage("assistant", "");
  const replyBody = message.querySelector(".body");
  let reply = "";
  const pending = [];
  state.controller = new AbortController();
  setBusy(true);
  try {
    const response = await postJSON(path, body, state.controller.signal);
    for await (const chunk of events(response)) {
      const piece = pieces(chunk);
      reply += piece.text;
      appendPiece(replyBody, piece, pending);
      $("messages").scrollTop = $("messages").scrollHeight;
    }
  } catch (error) {
    if (error.name !== "AbortError") {
      message.classList.add("failed");
      showError(error.message);
    }
  } finally {
    state.controller = null;
    setBusy(false);
  }
  finishReply(message, exchange, text, reply);
}

function finishReply(message, exchange, text, reply) {
  message.dataset.done = "true";
  if (!reply) return;
  if (state.model.chat) {
    state.history.push({ role: "user", content: text }, { role: "assistant", content: reply });
  }
  state.last = { ...exchange, reply };
  document.querySelectorAll(".message .actions").forEach((old) => old.remove());
  const actions = document.createElement("div");
  actions.className = "actions";
  const button = document.createElement("button");
  button.type = "button";
  button.id = "look-inside";
  button.textContent = "Look inside";
  button.addEventListener("click", () => lookInside());
  actions.append(button);
  message.append(actions);
  if (!$("inside").hidden) lookInside();
}

function newChat() {
  state.history = [];
  state.last = null;
  $("messages").replaceChildren();
  $("inside").hidden = true;
  showError("");
  $("input").focus();
}

// ------------------------------------------------------------------ look inside
async function lookInside() {
  if (!state.last) return;
  const body = { ...state.last, layer: Number($("layer").value), head: Number($("head").value) };
  $("inside").hidden = false;
  try {
    const response = await postJSON("/v1/slm/inspect", body);
    const result = await response.json();
    drawSurprise(result);
    drawAttention(result);
  } catch (error) {
    showError(`look inside: ${error.message}`);
  }
}

function surpriseClass(nats) {
  const bounds = [1, 3, 5, 7];
  const index = bounds.findIndex((bound) => nats < bound);
  return `s${index < 0 ? 4 : index}`;
}

function drawSurprise(result) {
  const spans = result.tokens.map((token, i) => {
    const span = document.createElement("span");
    span.textContent = token;
    if (i === 0) {
      span.className = "first";
      span.title = "the first token has no context to be predicted from";
    } else {
      const nats = result.surprise[i - 1];
      span.className = surpriseClass(nats);
      span.title = `surprise ${nats.toFixed(2)} nats (p = ${(100 * Math.exp(-nats)).toFixed(1)}%)`;
    }
    if (i >= result.reply_start) span.classList.add("reply-tok");
    return span;
  });
  $("surprise").replaceChildren(...spans);
  const reply = result.surprise.slice(Math.max(0, result.reply_start - 1));
  const mean = reply.reduce((a, b) => a + b, 0) / Math.max(1, reply.length);
  const dropped = result.dropped ? `; the first ${result.dropped} tokens left out` : "";
  $("surprise-summary").textContent =
    `reply: ${reply.length} tokens, mean surprise ${mean.toFixed(2)} nats` +
    ` (perplexity ${Math.exp(mean).toFixed(1)})${dropped}`;
}

// Viridis at five stops, interpolated: dark blue (no weight) to yellow (all of it).
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function viridis(x) {
  const at = Math.min(0.9999, Math.max(0, x)) * (VIRIDIS.length - 1);
  const i = Math.floor(at);
  const f = at - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function drawAttention(result) {
  const canvas = $("attention");
  const n = result.tokens.length;
  const cell = Math.max(1, Math.floor(420 / n));
  canvas.width = canvas.height = cell * n;
  const context = canvas.getContext("2d");
  context.fillStyle = "#f0f0f0";
  context.fillRect(0, 0, canvas.width, canvas.height);
  result.attention.forEach((row, i) => {
    row.forEach((weight, j) => {
      const [r, g, b] = viridis(Math.sqrt(weight));
      context.fillStyle = `rgb(${r}, ${g}, ${b})`;
      context.fillRect(j * cell, i * cell, cell, cell);
    });
  });
  canvas.inspected = result;
  canvas.dataset.drawn = `${result.layer}-${result.head}-${n}`;
  $("attention-caption").textContent = `layer ${result.layer}, head ${result.head}: ${n} tokens`;
}

function captionAttention(event) {
  const canvas = $("attention");
  const result = canvas.inspected;
  if (!result) return;
  const rect = canvas.getBoundingClientRect();
  const n = result.tokens.length;
  const i = Math.floor(((event.clientY - rect.top) / rect.height) * n);
  const j = Math.floor(((event.clientX - rect.left) / rect.width) * n);
  if (i < 0 || j < 0 || i >= n || j >= n) return;
  const weight = j <= i ? `${(100 * result.attention[i][j]).toFixed(1)}%` : "(the future)";
  $("attention-caption").textContent =
    `${visible(result.tokens[i])} (${i}) looks at ${visible(result.tokens[j])} (${j}): ${weight}`;
}

// ------------------------------------------------------------------ setting up
function fillPicker(select, count) {
  select.replaceChildren(...Array.from({ length: count }, (_, i) => new Option(String(i), i)));
}

async function loadModel() {
  const response = await fetch("/v1/slm/model", { headers: headers() });
  if (!response.ok) throw new Error(await errorMessage(response));
  state.model = await response.json();
  $("model-name").textContent = state.model.id;
  $("model-kind").textContent = state.model.chat ? "chat" : "text continuation";
  $("system-field").hidden = !state.model.chat;
  $("input").placeholder = state.model.chat
    ? "Type a message; Enter sends, Shift+Enter is a new line"
    : "Start a text and the model continues it; Enter sends";
  $("new-chat").textContent = state.model.chat ? "New chat" : "Clear";
  $("max_tokens").max = state.model.context_length - 1;
  fillPicker($("layer"), state.model.n_layer);
  fillPicker($("head"), state.model.n_head);
}

function bindControls() {
  for (const id of ["temperature", "top_p"]) {
    const show = () => { $(`${id}-value`).textContent = $(id).value; };
    $(id).addEventListener("input", show);
    show();
  }
  $("colour").addEventListener("change", () => {
    $("messages").classList.toggle("plain", !$("colour").checked);
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("input").value;
    if (!text.trim() || state.controller) return;
    $("input").value = "";
    send(text);
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("new-chat").addEventListener("click", newChat);
  $("layer").addEventListener("change", lookInside);
  $("head").addEventListener("change", lookInside);
  $("attention").addEventListener("mousemove", captionAttention);
  $("messages").addEventListener("mouseover", (event) => {
    if (event.target.tokenInfo) showAlternatives(event.target);
  });
  $("messages").addEventListener("mouseout", () => { $("tooltip").hidden = true; });
}

// Asks the server about its model; again when an API key is entered after a refusal.
async function connect() {
  try {
    await loadModel();
    showError("");
    setBusy(false);
  } catch (error) {
    document.body.dataset.state = "failed";
    showError(`cannot reach the model: ${error.message}`);
  }
}

bindControls();
$("key-form").addEventListener("submit", (event) => event.preventDefault());
$("api-key").addEventListener("change", () => { if (!state.model) connect(); });
connect();
