// charla's chat page: an IRC client over WebSocket (IRCv3 text.ircv3.net), plain JavaScript.
//
// Everything another user sends is put on the page as text (textContent, never innerHTML), so
// no one can inject markup or script. State lives in `buffers` (one per room, conversation and
// the server); the DOM shows the active one. History comes from CHATHISTORY: the latest lines on
// join, older ones as the log is scrolled up, and what was missed (AFTER the last msgid seen)
// after a reconnect, so nothing is shown twice and nothing is lost.
"use strict";

const LOBBY = "#lobby";
const PAGE = 50; // history lines asked for at a time
const GROUP_MS = 5 * 60 * 1000; // messages from one sender closer than this share a header
const TYPING_EVERY = 3000; // send +typing=active at most this often
const TYPING_SHOWN = 6000; // show someone typing this long after their last notice
const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "👀"];
const WANTED_CAPS = [
  "message-tags", "server-time", "batch", "echo-message", "draft/chathistory", "draft/event-playback",
  "multi-prefix", "away-notify", "draft/multiline", "labeled-response", "standard-replies",
];
const HELP = [
  "/join #room [key] — join or create a room",
  "/part [reason] — leave this room",
  "/msg nick text — private message (opens a conversation)",
  "/query nick — open a conversation",
  "/me text — action",
  "/nick name — change your nick",
  "/topic [text] — show or set the topic",
  "/who [#room] — who is here",
  "/whois nick — about someone",
  "/away [message] — mark yourself away (no message: back)",
  "/register password — create an account for your nick; /login [account] password; /logout",
  "/list — rooms on this server",
  "/invite nick, /kick nick [reason], /op nick, /deop nick, /voice nick, /ban mask, /mode …",
  "/quote LINE — send a raw IRC line",
  "/clear — clear this view",
  "Keys: Enter sends, Shift+Enter new line, Alt+↑/↓ switch rooms, Tab completes nicks, Esc closes panels",
];

const $ = (id) => document.getElementById(id);
const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};
const fold = (name) => name.toLowerCase();
const isRoom = (name) => name.startsWith("#");
const hue = (nick) => {
  let h = 0;
  for (const c of fold(nick)) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return h % 360;
};

// ---------------------------------------------------------------- IRC lines

const TAG_UNESCAPE = { ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" };

function parseLine(line) {
  const msg = { tags: {}, source: "", command: "", params: [] };
  let rest = line;
  if (rest.startsWith("@")) {
    const end = rest.indexOf(" ");
    for (const tag of rest.slice(1, end).split(";")) {
      const eq = tag.indexOf("=");
      const key = eq < 0 ? tag : tag.slice(0, eq);
      const raw = eq < 0 ? "" : tag.slice(eq + 1);
      msg.tags[key] = raw.replace(/\\(.?)/g, (_, c) => TAG_UNESCAPE[c] ?? c);
    }
    rest = rest.slice(end + 1).trimStart();
  }
  if (rest.startsWith(":")) {
    const end = rest.indexOf(" ");
    msg.source = rest.slice(1, end < 0 ? undefined : end);
    rest = end < 0 ? "" : rest.slice(end + 1).trimStart();
  }
  while (rest.length) {
    if (rest.startsWith(":")) {
      msg.params.push(rest.slice(1));
      break;
    }
    const end = rest.indexOf(" ");
    if (end < 0) {
      msg.params.push(rest);
      break;
    }
    msg.params.push(rest.slice(0, end));
    rest = rest.slice(end + 1).trimStart();
  }
  msg.command = (msg.params.shift() || "").toUpperCase();
  msg.nick = msg.source.split("!")[0];
  return msg;
}

function escapeTag(value) {
  return value.replace(/[\\; \r\n]/g, (c) => ({ "\\": "\\\\", ";": "\\:", " ": "\\s", "\r": "\\r", "\n": "\\n" })[c]);
}

function buildLine(command, params = [], tags = {}) {
  const tagText = Object.entries(tags).map(([k, v]) => (v === true ? k : `${k}=${escapeTag(v)}`)).join(";");
  const parts = params.map((p, i) => (i === params.length - 1 && (p === "" || p.includes(" ") || p.startsWith(":")) ? ":" + p : p));
  return (tagText ? "@" + tagText + " " : "") + [command, ...parts].join(" ");
}

// Strips IRC formatting (bold, colours, …): shown as plain text.
const stripFormatting = (text) => text.replace(/\x03(\d{1,2}(,\d{1,2})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]/g, "");

// ---------------------------------------------------------------- state

const state = {
  nick: localStorage.getItem("charla.nick") || "",
  registered: false,
  caps: new Set(),
  capValues: {},
  buffers: new Map(),
  order: [], // keys of buffers in sidebar order
  active: null,
  batches: new Map(),
  socket: null,
  retry: 0,
  reconnectTimer: null,
  typingSent: 0,
  everConnected: false,
  history: new Map(), // sent lines, for ↑
  // Logging in: { account, password, mode: "login" | "register" }, and a private server's
  // password. Kept for this tab, and on this device when asked to remember them.
  login: kept("charla.login"),
  serverPassword: kept("charla.server-password"),
  needServerPassword: false,
  account: null,
  halted: false, // no reconnecting until the welcome dialog is answered again
  started: false,
};

function buffer(name, kind) {
  const key = name === "*" ? "*" : fold(name);
  let b = state.buffers.get(key);
  if (!b) {
    kind = kind || (name === "*" ? "server" : isRoom(name) ? "room" : "dm");
    b = {
      key, name, kind, messages: [], ids: new Set(), members: new Map(), topic: "", unread: 0, mention: false,
      joined: false, reachedStart: kind === "server", loading: false, typing: new Map(), rendered: false,
    };
    state.buffers.set(key, b);
    if (kind !== "server") state.order.push(key);
    saveBuffers();
    renderSidebar();
  }
  return b;
}

function saveBuffers() {
  const rooms = [...state.buffers.values()].filter((b) => b.kind === "room").map((b) => b.name);
  localStorage.setItem("charla.rooms", JSON.stringify(rooms));
}

function kept(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key) ?? localStorage.getItem(key) ?? "null");
  } catch {
    return null;
  }
}

function keep(key, value, remember) {
  sessionStorage.setItem(key, JSON.stringify(value));
  if (remember) localStorage.setItem(key, JSON.stringify(value));
  else localStorage.removeItem(key);
}

function forget(key) {
  sessionStorage.removeItem(key);
  localStorage.removeItem(key);
}

function savedList(key) {
  try {
    const list = JSON.parse(localStorage.getItem(key) || "[]");
    return Array.isArray(list) ? list.filter((n) => typeof n === "string" && n) : [];
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- connection

function send(line) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(line);
}

function connect() {
  clearTimeout(state.reconnectTimer);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`, ["text.ircv3.net"]);
  state.socket = socket;
  state.registered = false;
  state.caps = new Set();
  state.capValues = {};
  state.batches.clear();
  setStatus("connecting…", "");
  socket.onopen = () => {
    if (state.serverPassword) send(buildLine("PASS", [state.serverPassword]));
    send("CAP LS 302");
    send(buildLine("NICK", [state.nick]));
    send(buildLine("USER", [state.nick, "0", "*", "charla web"]));
  };
  socket.onmessage = (event) => {
    if (typeof event.data === "string") handle(parseLine(event.data));
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    state.socket = null;
    state.account = null;
    renderMe();
    if (state.halted) {
      setStatus("offline", "offline");
      return;
    }
    for (const b of state.buffers.values()) {
      b.joined = false;
      b.loading = false;
      b.typing.clear();
    }
    const delay = Math.min(30000, 1000 * 2 ** state.retry) * (0.75 + Math.random() * 0.5);
    state.retry = Math.min(state.retry + 1, 5);
    setStatus(`offline — reconnecting in ${Math.round(delay / 1000)} s`, "offline");
    showBanner(`Connection lost. Reconnecting in ${Math.round(delay / 1000)} s…`);
    state.reconnectTimer = setTimeout(connect, delay);
    renderTyping();
  };
}

// The account's password is forgotten, here and in the browser's storage.
function dropLogin() {
  state.login = null;
  forget("charla.login");
}

// A failed login: the stored password goes, the chat goes on as a guest.
function loginFailed(msg) {
  dropLogin();
  serverNote(`Login failed: ${msg.params[msg.params.length - 1]}. You are chatting as a guest; /login NAME PASSWORD to try again.`, "error", true);
  if (!state.registered) send("CAP END");
}

function setStatus(text, cls) {
  const status = $("status");
  status.textContent = text;
  status.className = "status " + cls;
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text || "";
  banner.hidden = !text;
}

// ---------------------------------------------------------------- incoming

const handlers = {
  CAP(msg) {
    const sub = (msg.params[1] || "").toUpperCase();
    if (sub === "LS") {
      const more = msg.params[2] === "*";
      for (const cap of msg.params[more ? 3 : 2].split(" ")) {
        const eq = cap.indexOf("=");
        const name = eq < 0 ? cap : cap.slice(0, eq);
        if (name) state.capValues[name] = eq < 0 ? "" : cap.slice(eq + 1);
      }
      if (!more) {
        const wanted = WANTED_CAPS.filter((c) => c in state.capValues);
        if (state.login?.mode === "login" && "sasl" in state.capValues) wanted.push("sasl");
        if (wanted.length) send(buildLine("CAP", ["REQ", wanted.join(" ")]));
        else send("CAP END");
      }
    } else if (sub === "ACK") {
      for (const cap of msg.params[2].split(" ")) if (cap) state.caps.add(cap.replace(/^-/, ""));
      if (state.registered) return;
      // Logged in before registration ends (SASL PLAIN); the server's answer ends it.
      if (state.login?.mode === "login" && state.caps.has("sasl")) send("AUTHENTICATE PLAIN");
      else send("CAP END");
    } else if (sub === "NAK") {
      send("CAP END");
    }
  },
  "001"(msg) {
    state.registered = true;
    state.retry = 0;
    setNick(msg.params[0]);
    if (state.login?.mode === "register") send(buildLine("REGISTER", [state.login.account, "*", state.login.password]));
    setStatus("online", "online");
    showBanner("");
    const rooms = new Set([LOBBY, ...savedList("charla.rooms")].map(fold));
    for (const b of state.buffers.values()) if (b.kind === "room") rooms.add(b.key);
    const names = [...rooms].map((key) => state.buffers.get(key)?.name || savedList("charla.rooms").find((n) => fold(n) === key) || key);
    send(buildLine("JOIN", [names.join(",")]));
    for (const b of state.buffers.values()) if (b.kind === "dm") catchUp(b);
    // The private conversations of this nick or account, whichever device they were held on.
    if (state.caps.has("draft/chathistory")) {
      const now = new Date(Date.now() + 60_000).toISOString();
      send(buildLine("CHATHISTORY", ["TARGETS", `timestamp=${now}`, "timestamp=1970-01-01T00:00:00.000Z", "100"]));
    }
    if (!state.active) activate(fold(LOBBY));
    state.everConnected = true;
  },
  "433"(msg) {
    if (!state.registered) {
      const taken = msg.params[1];
      const next = taken.length < 28 ? taken + "_" : taken.slice(0, 24) + Math.floor(Math.random() * 1000);
      serverNote(`The nick ${taken} is taken; trying ${next}.`, "info");
      send(buildLine("NICK", [next]));
    } else {
      serverNote(`The nick ${msg.params[1]} is taken; choose another with /nick.`, "error", true);
    }
  },
  "432"(msg) {
    serverNote(`${msg.params[1]} is not a valid nick: ${msg.params[2]}`, "error", true);
    if (!state.registered) send(buildLine("NICK", ["guest" + Math.floor(Math.random() * 10000)]));
  },
  "464"(msg) {
    if (state.registered) return handleOther(msg);
    // A private server: nothing more until its password is given.
    const wrong = Boolean(state.serverPassword);
    state.halted = true;
    state.needServerPassword = true;
    state.serverPassword = null;
    forget("charla.server-password");
    openWelcome(wrong ? "That server password is not right. Try again." : "This server is private: enter its password.");
  },
  AUTHENTICATE(msg) {
    if (msg.params[0] !== "+" || !state.login) return;
    const { account, password } = state.login;
    const bytes = new TextEncoder().encode(`${account}\0${account}\0${password}`);
    send(buildLine("AUTHENTICATE", [btoa(String.fromCharCode(...bytes))]));
  },
  "900"(msg) {
    state.account = msg.params[2];
    serverNote(`You are logged in as ${state.account}.`, "info");
    renderMe();
  },
  "901"() {
    state.account = null;
    renderMe();
  },
  "903"() {
    if (!state.registered) send("CAP END");
  },
  "904": (msg) => loginFailed(msg),
  "902": (msg) => loginFailed(msg),
  "905": (msg) => loginFailed(msg),
  "906": (msg) => loginFailed(msg),
  "907"() {},
  "908"() {},
  REGISTER(msg) {
    if (msg.params[0] !== "SUCCESS" || !state.login) return;
    state.login = { ...state.login, account: msg.params[1], mode: "login" };
    keep("charla.login", state.login, localStorage.getItem("charla.login") !== null);
    state.account = msg.params[1];
    serverNote(`Account ${msg.params[1]} created: you are logged in, and the nick is yours.`, "info", true);
    renderMe();
  },
  PING(msg) {
    send(buildLine("PONG", msg.params));
  },
  ERROR(msg) {
    serverNote(msg.params[0] || "closed", "error", true);
  },
  BATCH(msg) {
    const ref = msg.params[0];
    if (ref.startsWith("+")) {
      const parent = msg.tags.batch;
      state.batches.set(ref.slice(1), { type: msg.params[1], params: msg.params.slice(2), tags: msg.tags, source: msg.source, parent, lines: [] });
    } else {
      const batch = state.batches.get(ref.slice(1));
      state.batches.delete(ref.slice(1));
      if (batch) endBatch(batch);
    }
  },
  PRIVMSG: (msg) => message(msg, "privmsg"),
  NOTICE: (msg) => message(msg, "notice"),
  TAGMSG(msg) {
    const target = conversation(msg);
    if (!target) return;
    const b = buffer(target);
    const react = msg.tags["+draft/react"];
    const reply = msg.tags["+draft/reply"];
    if (react && reply) addReaction(b, reply, react, msg.nick);
    const typing = msg.tags["+typing"];
    if (typing && fold(msg.nick) !== fold(state.nick)) {
      clearTimeout(b.typing.get(msg.nick));
      if (typing === "active" || typing === "paused") {
        b.typing.set(msg.nick, setTimeout(() => {
          b.typing.delete(msg.nick);
          renderTyping();
        }, TYPING_SHOWN));
      } else {
        b.typing.delete(msg.nick);
      }
      renderTyping();
    }
  },
  JOIN(msg) {
    const b = buffer(msg.params[0], "room");
    if (fold(msg.nick) === fold(state.nick)) {
      b.joined = true;
      b.members.clear();
      catchUp(b);
      if (state.pendingActivate === b.key || !state.active) {
        state.pendingActivate = null;
        activate(b.key);
      }
      renderSidebar();
    } else {
      b.members.set(msg.nick, { prefix: "", away: false });
      if (b.key === state.active) renderMembers();
    }
    addEvent(b, msg, { kind: "join", nick: msg.nick });
  },
  PART(msg) {
    const b = state.buffers.get(fold(msg.params[0]));
    if (!b) return;
    if (fold(msg.nick) === fold(state.nick)) {
      b.joined = false;
      return;
    }
    b.members.delete(msg.nick);
    addEvent(b, msg, { kind: "part", nick: msg.nick, reason: msg.params[1] });
    if (b.key === state.active) renderMembers();
  },
  KICK(msg) {
    const b = state.buffers.get(fold(msg.params[0]));
    if (!b) return;
    const who = msg.params[1];
    b.members.delete(who);
    addEvent(b, msg, { kind: "info", text: `${who} was removed by ${msg.nick}${msg.params[2] ? ": " + msg.params[2] : ""}` });
    if (fold(who) === fold(state.nick)) {
      b.joined = false;
      serverNote(`You were removed from ${b.name} by ${msg.nick}.`, "error", true);
    }
    if (b.key === state.active) renderMembers();
  },
  QUIT(msg) {
    for (const b of state.buffers.values()) {
      if (b.members.delete(msg.nick)) {
        addEvent(b, msg, { kind: "quit", nick: msg.nick, reason: msg.params[0] });
        if (b.key === state.active) renderMembers();
      }
    }
  },
  NICK(msg) {
    const to = msg.params[0];
    if (fold(msg.nick) === fold(state.nick)) setNick(to);
    for (const b of state.buffers.values()) {
      const member = b.members.get(msg.nick);
      if (member) {
        b.members.delete(msg.nick);
        b.members.set(to, member);
        addEvent(b, msg, { kind: "info", text: `${msg.nick} is now known as ${to}` });
      }
    }
    renderMembers();
  },
  TOPIC(msg) {
    const b = buffer(msg.params[0], "room");
    b.topic = msg.params[1] || "";
    addEvent(b, msg, { kind: "info", text: b.topic ? `${msg.nick} set the topic: ${b.topic}` : `${msg.nick} cleared the topic` });
    if (b.key === state.active) renderHeader();
  },
  AWAY(msg) {
    for (const b of state.buffers.values()) {
      const member = b.members.get(msg.nick);
      if (member) member.away = msg.params.length > 0;
    }
    renderMembers();
  },
  MODE(msg) {
    const b = state.buffers.get(fold(msg.params[0]));
    if (!b) return;
    addEvent(b, msg, { kind: "info", text: `${msg.nick} set mode ${msg.params.slice(1).join(" ")}` });
    send(buildLine("NAMES", [b.name]));
  },
  INVITE(msg) {
    serverNote(`${msg.nick} invites you to ${msg.params[1]} — type /join ${msg.params[1]}`, "info", true);
  },
  "332"(msg) {
    const b = buffer(msg.params[1], "room");
    b.topic = msg.params[2] || "";
    if (b.key === state.active) renderHeader();
  },
  "331"(msg) {
    const b = buffer(msg.params[1], "room");
    b.topic = "";
    if (b.key === state.active) renderHeader();
  },
  "353"(msg) {
    const b = buffer(msg.params[2], "room");
    if (!b.namesComing) {
      b.namesComing = true;
      b.members.clear();
    }
    for (const entry of msg.params[3].split(" ")) {
      if (!entry) continue;
      const match = /^([~&@%+]*)(.*)$/.exec(entry);
      const nick = match[2].split("!")[0];
      b.members.set(nick, { prefix: match[1], away: b.members.get(nick)?.away || false });
    }
  },
  "366"(msg) {
    const b = buffer(msg.params[1], "room");
    b.namesComing = false;
    if (b.key === state.active) renderMembers();
  },
  "352"(msg) {
    const [, room, , , , nick, flags] = msg.params;
    note(`${nick}${flags.includes("G") ? " (away)" : ""}${room !== "*" ? " in " + room : ""} — ${msg.params[7] || ""}`);
  },
  "315"() {},
  "322"(msg) {
    note(`${msg.params[1]} (${msg.params[2]}) ${msg.params[3] || ""}`);
  },
  "323"() {},
  "321"() {
    note("Rooms on this server:");
  },
  "301"(msg) {
    const b = state.buffers.get(fold(msg.params[1]));
    addEvent(b || state.buffers.get(state.active), msg, { kind: "info", text: `${msg.params[1]} is away: ${msg.params[2]}` });
  },
  "305"() {
    note("You are back.");
  },
  "306"() {
    note("You are marked as away.");
  },
  "311"(msg) {
    note(`${msg.params[1]} is ${msg.params[2]}@${msg.params[3]} (${msg.params[5] || ""})`);
  },
  "319"(msg) {
    note(`${msg.params[1]} is in ${msg.params[2]}`);
  },
  "318"() {},
  "324"(msg) {
    note(`${msg.params[1]} modes: ${msg.params.slice(2).join(" ")}`);
  },
  "341"(msg) {
    note(`Invited ${msg.params[1]} to ${msg.params[2]}.`);
  },
  FAIL(msg) {
    if (msg.params[0] === "REGISTER" && state.login?.mode === "register") {
      dropLogin();
      serverNote(`The account was not created: ${msg.params[msg.params.length - 1]} You are chatting as a guest.`, "error", true);
      return;
    }
    note(`${msg.params[0]}: ${msg.params[msg.params.length - 1]}`, "error");
  },
  WARN(msg) {
    note(msg.params[msg.params.length - 1], "info");
  },
  NOTE(msg) {
    note(msg.params[msg.params.length - 1], "info");
  },
};

// Numerics that only tell the server's story go to the server buffer; errors (4xx, 5xx) are
// shown where the user is.
function handleOther(msg) {
  if (/^[45]\d\d$/.test(msg.command)) {
    note(msg.params.slice(1).join(" "), "error");
  } else if (/^\d\d\d$/.test(msg.command)) {
    serverNote(msg.params.slice(1).join(" "), "info");
  }
}

function handle(msg) {
  const ref = msg.tags.batch;
  if (msg.command !== "BATCH" && ref && state.batches.has(ref)) {
    state.batches.get(ref).lines.push(msg);
    return;
  }
  (handlers[msg.command] || handleOther)(msg);
}

function endBatch(batch) {
  if (batch.type === "chathistory") {
    const b = buffer(batch.params[0]);
    const request = b.request || { kind: "latest" };
    b.request = null;
    b.loading = false;
    const items = [];
    for (const msg of batch.lines) {
      const item = toItem(msg);
      if (item) items.push(item);
    }
    insertHistory(b, items);
    if (request.kind !== "after" && batch.lines.length < request.limit) b.reachedStart = true;
    if (request.kind === "after" && batch.lines.length >= request.limit) catchUp(b);
    if (b.key === state.active) renderLog(request.kind === "before");
  } else if (batch.type === "draft/chathistory-targets") {
    for (const msg of batch.lines) {
      const name = msg.params[1];
      if (!name || isRoom(name) || fold(name) === fold(state.nick)) continue;
      catchUp(buffer(name, "dm"));
    }
  } else if (batch.type === "draft/multiline") {
    const first = batch.lines[0];
    if (!first) return;
    const text = batch.lines.reduce((all, m, i) => all + (i && !("draft/multiline-concat" in m.tags) ? "\n" : "") + (m.params[1] || ""), "");
    const msg = { ...first, tags: { ...first.tags, ...batch.tags }, params: [batch.params[0], text], source: batch.source || first.source };
    msg.nick = msg.source.split("!")[0];
    // Inside history, it is one line of the history.
    const parent = state.batches.get(batch.parent);
    if (parent) parent.lines.push(msg);
    else handle(msg);
  } else {
    for (const msg of batch.lines) handle(msg);
  }
}

// Which buffer a message belongs to: the room, or for a private message the other person.
function conversation(msg) {
  const target = msg.params[0];
  if (!target) return null;
  if (isRoom(target)) return target;
  if (!msg.nick || msg.nick.includes(".") || msg.source === "charla") return "*";
  return fold(msg.nick) === fold(state.nick) ? target : msg.nick;
}

function toItem(msg) {
  const time = msg.tags.time ? Date.parse(msg.tags.time) : Date.now();
  if (msg.command === "PRIVMSG" || msg.command === "NOTICE") {
    let text = msg.params[1] || "";
    let kind = msg.command === "NOTICE" ? "notice" : "privmsg";
    if (text.startsWith("\x01ACTION ")) {
      kind = "action";
      text = text.slice(8).replace(/\x01$/, "");
    } else if (text.startsWith("\x01")) {
      return null;
    }
    text = stripFormatting(text);
    const mine = fold(msg.nick) === fold(state.nick);
    const mention = !mine && mentions(text);
    return { id: msg.tags.msgid, time, nick: msg.nick, kind, text, mention, reactions: new Map() };
  }
  const kinds = { JOIN: "join", PART: "part", QUIT: "quit" };
  if (kinds[msg.command]) return { id: msg.tags.msgid, time, nick: msg.nick, kind: kinds[msg.command], reason: msg.params[msg.command === "QUIT" ? 0 : 1] };
  if (msg.command === "TOPIC") return { id: msg.tags.msgid, time, kind: "info", text: `${msg.nick} set the topic: ${msg.params[1] || ""}` };
  if (msg.command === "NICK") return { id: msg.tags.msgid, time, kind: "info", text: `${msg.nick} is now known as ${msg.params[0]}` };
  if (msg.command === "KICK") return { id: msg.tags.msgid, time, kind: "info", text: `${msg.params[1]} was removed by ${msg.nick}` };
  return null;
}

function mentions(text) {
  if (!state.nick) return false;
  const escaped = state.nick.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\w-])${escaped}($|[^\\w-])`, "i").test(text);
}

function message(msg, _kind) {
  const target = conversation(msg);
  if (!target) return;
  const item = toItem(msg);
  if (!item) return;
  const b = buffer(target);
  if (item.id && b.ids.has(item.id)) return;
  const typing = b.typing.get(msg.nick);
  if (typing) {
    clearTimeout(typing);
    b.typing.delete(msg.nick);
    renderTyping();
  }
  append(b, item);
  const mine = fold(item.nick) === fold(state.nick);
  if (!mine && (b.key !== state.active || document.hidden)) {
    b.unread += 1;
    if (item.mention || b.kind === "dm") {
      b.mention = true;
      notify(b, item);
    }
    renderSidebar();
  }
}

function addEvent(b, msg, item) {
  if (!b) return;
  item.time = msg.tags?.time ? Date.parse(msg.tags.time) : Date.now();
  item.id = msg.tags?.msgid;
  if (item.id && b.ids.has(item.id)) return;
  append(b, item);
}

function note(text, kind = "info") {
  const b = state.buffers.get(state.active) || buffer("*");
  append(b, { time: Date.now(), kind, text, local: true });
}

function serverNote(text, kind = "info", alsoHere = false) {
  append(buffer("*", "server"), { time: Date.now(), kind, text, local: true });
  if (alsoHere && state.active !== "*") note(text, kind);
}

// Adds a live item at the end of a buffer.
function append(b, item) {
  if (item.id) b.ids.add(item.id);
  b.messages.push(item);
  if (b.key === state.active) {
    const log = $("log");
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    log.append(...renderItems(b, b.messages.length - 1));
    if (atEnd || fold(item.nick || "") === fold(state.nick)) log.scrollTop = log.scrollHeight;
  }
}

// Merges history into a buffer: no duplicates (by msgid), in time order.
function insertHistory(b, items) {
  const fresh = items.filter((item) => !item.id || !b.ids.has(item.id));
  for (const item of fresh) if (item.id) b.ids.add(item.id);
  b.messages = [...fresh, ...b.messages].sort((x, y) => x.time - y.time || (x.local ? 1 : 0) - (y.local ? 1 : 0));
}

// Asks for what this buffer has not seen: the latest page, or everything after the last msgid.
function catchUp(b) {
  if (!state.caps.has("draft/chathistory") || b.loading || b.kind === "server") return;
  const last = [...b.messages].reverse().find((m) => m.id);
  b.loading = true;
  if (last) {
    b.request = { kind: "after", limit: 100 };
    send(buildLine("CHATHISTORY", ["AFTER", b.name, `msgid=${last.id}`, "100"]));
  } else {
    b.request = { kind: "latest", limit: PAGE };
    send(buildLine("CHATHISTORY", ["LATEST", b.name, "*", String(PAGE)]));
  }
}

function loadOlder(b) {
  if (!state.caps.has("draft/chathistory") || b.loading || b.reachedStart || !b.joined && b.kind === "room") return;
  const first = b.messages.find((m) => m.id);
  if (!first) return;
  b.loading = true;
  b.request = { kind: "before", limit: PAGE };
  send(buildLine("CHATHISTORY", ["BEFORE", b.name, `msgid=${first.id}`, String(PAGE)]));
  renderLog(true);
}

function addReaction(b, msgid, emoji, nick) {
  const item = b.messages.find((m) => m.id === msgid);
  if (!item || !item.reactions) return;
  const who = item.reactions.get(emoji) || new Set();
  who.add(nick);
  item.reactions.set(emoji, who);
  if (b.key === state.active) {
    const node = document.querySelector(`[data-msgid="${CSS.escape(msgid)}"]`);
    if (node) renderReactions(node, item);
  }
}

// ---------------------------------------------------------------- rendering

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
const isEvent = (item) => item.kind === "join" || item.kind === "part" || item.kind === "quit";

function avatar(nick) {
  const node = el("span", "avatar", [...nick][0] || "?");
  node.style.setProperty("--hue", hue(nick));
  node.setAttribute("aria-hidden", "true");
  return node;
}

// Text with its links made clickable: every piece is a text node or a link built from text.
function linkify(parent, text) {
  const url = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}]/g;
  let at = 0;
  for (const match of text.matchAll(url)) {
    parent.append(text.slice(at, match.index));
    const a = el("a", "", match[0]);
    a.href = match[0];
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    parent.append(a);
    at = match.index + match[0].length;
  }
  parent.append(text.slice(at));
}

// The nodes for item `i` of a buffer, given what comes before it (grouping, day lines, folds).
function renderItems(b, i) {
  const item = b.messages[i];
  const prev = b.messages[i - 1];
  const nodes = [];
  if (!prev || new Date(prev.time).toDateString() !== new Date(item.time).toDateString()) {
    nodes.push(el("div", "day", dayFormat.format(item.time)));
  }
  if (isEvent(item)) {
    // A run of joins and parts is one line, updated as the run grows.
    const log = $("log");
    const last = log.lastElementChild;
    if (prev && isEvent(prev) && last && last.classList.contains("fold") && !nodes.length) {
      last.foldItems.push(item);
      last.textContent = foldText(last.foldItems);
      return [];
    }
    const node = el("div", "event fold");
    node.foldItems = [item];
    node.textContent = foldText(node.foldItems);
    nodes.push(node);
    return nodes;
  }
  if (item.kind === "info" || item.kind === "error") {
    const node = el("div", "event " + item.kind);
    const text = el("span", "text");
    linkify(text, item.text);
    node.append(text);
    nodes.push(node);
    return nodes;
  }
  const grouped = prev && !nodes.length && prev.nick === item.nick && !isEvent(prev) && prev.kind !== "info" &&
    prev.kind !== "error" && item.kind !== "action" && prev.kind !== "action" && item.time - prev.time < GROUP_MS;
  const node = el("div", `msg ${item.kind}${grouped ? "" : " first"}${item.mention ? " mention" : ""}`);
  if (item.id) node.dataset.msgid = item.id;
  const time = timeFormat.format(item.time);
  if (grouped) {
    node.append(el("span", "side-time", time));
  } else {
    node.append(avatar(item.nick));
    const head = el("div", "head");
    const nick = el("span", "nick", item.kind === "action" ? "" : item.nick);
    nick.style.setProperty("--hue", hue(item.nick));
    head.append(nick, el("time", "time", time));
    head.lastChild.dateTime = new Date(item.time).toISOString();
    if (item.kind !== "action") node.append(head);
  }
  const text = el("div", "text");
  if (item.kind === "action") {
    const nick = el("span", "nick", item.nick + " ");
    nick.style.setProperty("--hue", hue(item.nick));
    text.append("* ", nick);
  }
  linkify(text, item.text);
  node.append(text);
  if (item.id && state.caps.has("message-tags") && b.kind !== "server") {
    const react = el("button", "react-button", "☺+");
    react.type = "button";
    react.title = "React";
    react.setAttribute("aria-label", `React to ${item.nick}'s message`);
    react.addEventListener("click", () => openPicker(node, b, item));
    node.append(react);
  }
  renderReactions(node, item);
  nodes.push(node);
  return nodes;
}

function foldText(items) {
  const joined = [], left = [];
  for (const item of items) {
    if (item.kind === "join") {
      joined.push(item.nick);
      const at = left.indexOf(item.nick);
      if (at >= 0) left.splice(at, 1);
    } else {
      left.push(item.nick);
    }
  }
  const names = (list) => [...new Set(list)].join(", ");
  const parts = [];
  if (joined.length) parts.push(`→ ${names(joined)} joined`);
  if (left.length) parts.push(`← ${names(left)} left`);
  return parts.join(" · ");
}

function renderReactions(node, item) {
  node.querySelector(".reactions")?.remove();
  if (!item.reactions || !item.reactions.size) return;
  const box = el("div", "reactions");
  for (const [emoji, who] of item.reactions) {
    const chip = el("button", "reaction" + (who.has(state.nick) ? " mine" : ""), `${emoji} ${who.size}`);
    chip.type = "button";
    chip.title = [...who].join(", ");
    chip.addEventListener("click", () => sendReaction(currentBuffer(), item, emoji));
    box.append(chip);
  }
  node.querySelector(".text").after(box);
}

function openPicker(node, b, item) {
  document.querySelector(".picker")?.remove();
  const picker = $("reaction-picker").content.firstElementChild.cloneNode(true);
  for (const emoji of REACTIONS) {
    const button = el("button", "", emoji);
    button.type = "button";
    button.setAttribute("aria-label", `React with ${emoji}`);
    button.addEventListener("click", () => {
      sendReaction(b, item, emoji);
      picker.remove();
    });
    picker.append(button);
  }
  picker.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      picker.remove();
      node.querySelector(".react-button")?.focus();
    }
  });
  node.append(picker);
  picker.firstChild.focus();
}

function sendReaction(b, item, emoji) {
  if (!b || !item.id) return;
  if (item.reactions.get(emoji)?.has(state.nick)) return;
  send(buildLine("TAGMSG", [b.name], { "+draft/react": emoji, "+draft/reply": item.id }));
  // Without echo of TAGMSG from every server, show our own reaction at once.
  if (!state.caps.has("echo-message")) addReaction(b, item.id, emoji, state.nick);
}

function renderLog(keepPosition) {
  const b = currentBuffer();
  const log = $("log");
  if (!b) return;
  const fromBottom = log.scrollHeight - log.scrollTop;
  log.replaceChildren();
  if (b.reachedStart && b.kind !== "server") {
    log.append(el("div", "start", b.kind === "room" ? `This is the beginning of ${b.name}.` : `This is the beginning of your conversation with ${b.name}.`));
  } else if (b.loading) {
    log.append(el("div", "loading", "Loading earlier messages…"));
  }
  for (let i = 0; i < b.messages.length; i++) log.append(...renderItems(b, i));
  log.scrollTop = keepPosition ? log.scrollHeight - fromBottom : log.scrollHeight;
  b.rendered = true;
  // A short log cannot be scrolled: ask for more at once.
  if (!b.reachedStart && log.scrollHeight <= log.clientHeight && b.messages.length) loadOlder(b);
}

function renderHeader() {
  const b = currentBuffer();
  $("buffer-name").textContent = b ? (b.kind === "server" ? "Server messages" : b.name) : "charla";
  $("topic").textContent = b?.kind === "room" ? b.topic : b?.kind === "dm" ? "Private conversation" : "";
  $("topic").title = b?.topic || "";
  const roomish = b?.kind === "room";
  $("open-members").hidden = !roomish;
  $("app").classList.toggle("no-members", !roomish);
  $("member-count").textContent = roomish ? String(b.members.size) : "";
  $("input").placeholder = b?.kind === "server" ? "Type /help, or a command" : `Message ${b?.name || ""}`;
}

function renderMembers() {
  const b = currentBuffer();
  const list = $("member-list");
  list.replaceChildren();
  if (!b || b.kind !== "room") return;
  const rank = (p) => (p.includes("@") ? 0 : p.includes("+") ? 1 : 2);
  const members = [...b.members.entries()].sort(([a, x], [c, y]) => rank(x.prefix) - rank(y.prefix) || a.localeCompare(c));
  for (const [nick, info] of members) {
    const li = el("li", info.away ? "away" : "");
    const button = el("button");
    button.type = "button";
    button.title = fold(nick) === fold(state.nick) ? "You" : `Message ${nick}`;
    const prefix = el("span", "prefix", info.prefix.slice(0, 1));
    const name = el("span", "nick", nick);
    name.style.setProperty("--hue", hue(nick));
    button.append(prefix, avatar(nick), name);
    button.addEventListener("click", () => {
      if (fold(nick) !== fold(state.nick)) openConversation(nick);
    });
    li.append(button);
    list.append(li);
  }
  $("member-count").textContent = String(b.members.size);
}

function renderTyping() {
  const b = currentBuffer();
  const who = b ? [...b.typing.keys()] : [];
  $("typing").textContent = !who.length ? "" : who.length === 1 ? `${who[0]} is typing…` : who.length < 4 ? `${who.join(", ")} are typing…` : "Several people are typing…";
}

function renderSidebar() {
  const rooms = $("rooms"), dms = $("dms");
  rooms.replaceChildren();
  dms.replaceChildren();
  let unread = 0;
  for (const key of state.order) {
    const b = state.buffers.get(key);
    if (!b) continue;
    unread += b.unread;
    const li = el("li");
    const button = el("button", "buffer" + (key === state.active ? " active" : "") + (b.unread ? " unread" : "") + (b.mention ? " mention" : ""));
    button.type = "button";
    button.dataset.key = key;
    if (key === state.active) button.setAttribute("aria-current", "page");
    const name = el("span", "name", b.name);
    button.append(name);
    if (b.unread) button.append(el("span", "badge", String(b.unread)));
    button.addEventListener("click", () => activate(key));
    if (fold(b.name) !== fold(LOBBY)) {
      const close = el("span", "close", "×");
      close.setAttribute("role", "button");
      close.setAttribute("aria-label", b.kind === "room" ? `Leave ${b.name}` : `Close ${b.name}`);
      close.title = b.kind === "room" ? "Leave room" : "Close conversation";
      close.addEventListener("click", (e) => {
        e.stopPropagation();
        closeBuffer(b);
      });
      button.append(close);
    }
    li.append(button);
    (b.kind === "room" ? rooms : dms).append(li);
  }
  const server = state.buffers.get("*");
  const serverButton = $("server-buffer");
  serverButton.classList.toggle("active", state.active === "*");
  const badge = serverButton.querySelector(".badge");
  badge.hidden = !server?.unread;
  badge.textContent = String(server?.unread || 0);
  const active = currentBuffer();
  document.title = (unread ? `(${unread}) ` : "") + (active && active.kind !== "server" ? `${active.name} — charla` : "charla");
}

function currentBuffer() {
  return state.buffers.get(state.active);
}

function activate(key) {
  const b = state.buffers.get(key);
  if (!b) return;
  state.active = key;
  b.unread = 0;
  b.mention = false;
  renderSidebar();
  renderHeader();
  renderMembers();
  renderTyping();
  renderLog(false);
  $("app").classList.remove("show-sidebar");
  if (matchMedia("(min-width: 641px)").matches) $("input").focus();
}

function openConversation(nick) {
  const b = buffer(nick, "dm");
  activate(b.key);
  catchUp(b);
  $("input").focus();
}

function closeBuffer(b) {
  if (b.kind === "room") send(buildLine("PART", [b.name]));
  state.buffers.delete(b.key);
  state.order = state.order.filter((k) => k !== b.key);
  saveBuffers();
  if (state.active === b.key) activate(fold(LOBBY));
  else renderSidebar();
}

function setNick(nick) {
  state.nick = nick;
  localStorage.setItem("charla.nick", nick);
  $("me-nick").textContent = nick;
  const me = $("me-avatar");
  me.textContent = [...nick][0] || "?";
  me.style.setProperty("--hue", hue(nick));
  renderMe();
}

function renderMe() {
  const nick = $("me-nick");
  nick.classList.toggle("account", Boolean(state.account));
  nick.title = state.account ? `Logged in as ${state.account}` : "Guest (not logged in)";
}

// ---------------------------------------------------------------- notifications

function notify(b, item) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (!document.hidden && b.key === state.active) return;
  const title = b.kind === "dm" ? `${item.nick} (private)` : `${item.nick} in ${b.name}`;
  const n = new Notification(title, { body: item.text.slice(0, 200), tag: b.key, icon: "/icon.svg" });
  n.onclick = () => {
    window.focus();
    activate(b.key);
    n.close();
  };
}

function renderNotifyButton() {
  const button = $("notify");
  if (!("Notification" in window)) {
    button.hidden = true;
    return;
  }
  const on = Notification.permission === "granted";
  button.classList.toggle("on", on);
  button.title = on ? "Notifications are on for mentions and private messages" : "Notify me of mentions and private messages";
  button.setAttribute("aria-pressed", String(on));
}

// ---------------------------------------------------------------- sending

function sendText(target, text) {
  const lines = text.split("\n");
  const multiline = state.caps.has("draft/multiline") && lines.length > 1;
  if (multiline) {
    const limits = Object.fromEntries((state.capValues["draft/multiline"] || "").split(",").map((kv) => kv.split("=")));
    const maxLines = Number(limits["max-lines"]) || 100;
    const maxBytes = Number(limits["max-bytes"]) || 4096;
    if (lines.length <= maxLines && new TextEncoder().encode(text).length <= maxBytes) {
      const ref = "m" + Math.random().toString(36).slice(2, 10);
      send(buildLine("BATCH", ["+" + ref, "draft/multiline", target]));
      for (const line of lines) send(buildLine("PRIVMSG", [target, line], { batch: ref }));
      send(buildLine("BATCH", ["-" + ref]));
      return;
    }
  }
  for (const line of lines) if (line.trim()) send(buildLine("PRIVMSG", [target, line]));
}

function command(text) {
  const b = currentBuffer();
  const here = b && b.kind !== "server" ? b.name : null;
  const [word, ...words] = text.slice(1).split(" ");
  const rest = words.join(" ").trim();
  const cmd = word.toLowerCase();
  const needHere = () => {
    if (!here) note(`/${cmd} works in a room or conversation.`, "error");
    return here;
  };
  switch (cmd) {
    case "join":
    case "j": {
      const [room, key] = rest.split(" ");
      if (!room) return note("Usage: /join #room [key]", "error");
      const name = isRoom(room) ? room : "#" + room;
      state.pendingActivate = fold(name);
      send(buildLine("JOIN", key ? [name, key] : [name]));
      if (state.buffers.get(fold(name))?.joined) activate(fold(name));
      return;
    }
    case "part":
    case "leave":
      if (needHere() && b.kind === "room") closeBuffer(b);
      return;
    case "msg":
    case "query": {
      const [nick, ...said] = words;
      if (!nick) return note(`Usage: /${cmd} nick [text]`, "error");
      if (isRoom(nick)) {
        if (said.length) sendText(nick, said.join(" "));
        return;
      }
      openConversation(nick);
      if (said.length) sendText(nick, said.join(" "));
      return;
    }
    case "me":
      if (needHere()) send(buildLine("PRIVMSG", [here, `\x01ACTION ${rest}\x01`]));
      return;
    case "nick":
      if (!rest) return note("Usage: /nick name", "error");
      return send(buildLine("NICK", [rest]));
    case "topic":
      if (!needHere()) return;
      if (rest) send(buildLine("TOPIC", [here, rest]));
      else note(b.topic ? `Topic: ${b.topic}` : "No topic is set.");
      return;
    case "who":
      if (rest || here) send(buildLine("WHO", [rest || here]));
      return;
    case "whois":
      return send(buildLine("WHOIS", [rest]));
    case "away":
      return send(rest ? buildLine("AWAY", [rest]) : "AWAY");
    case "back":
      return send("AWAY");
    case "list":
    case "rooms":
      return send("LIST");
    case "invite":
      return send(buildLine("INVITE", [words[0], words[1] || here]));
    case "kick":
      if (needHere()) send(buildLine("KICK", [here, words[0], words.slice(1).join(" ") || words[0]]));
      return;
    case "op": case "deop": case "voice": case "devoice": {
      const mode = { op: "+o", deop: "-o", voice: "+v", devoice: "-v" }[cmd];
      if (needHere()) send(buildLine("MODE", [here, mode, words[0]]));
      return;
    }
    case "ban": case "unban":
      if (needHere()) send(buildLine("MODE", [here, cmd === "ban" ? "+b" : "-b", words[0]]));
      return;
    case "mode":
      return send(buildLine("MODE", words[0]?.startsWith("#") ? words : [here || state.nick, ...words]));
    case "login": {
      const [account, password] = words.length > 1 ? words : [state.nick, words[0]];
      if (!password) return note("Usage: /login [account] password", "error");
      state.login = { account, password, mode: "login" };
      keep("charla.login", state.login, false);
      return send("AUTHENTICATE PLAIN");
    }
    case "register":
      if (!rest || words.length > 1) return note("Usage: /register password (creates an account for your nick)", "error");
      state.login = { account: state.nick, password: rest, mode: "register" };
      keep("charla.login", state.login, false);
      return send(buildLine("REGISTER", [state.nick, "*", rest]));
    case "logout":
      dropLogin();
      return send(buildLine("PRIVMSG", ["NickServ", "LOGOUT"]));
    case "quote":
    case "raw":
      return send(rest);
    case "clear":
      if (b) {
        b.messages = [];
        renderLog(false);
      }
      return;
    case "help":
      for (const line of HELP) note(line);
      return;
    case "quit":
      send(buildLine("QUIT", [rest || "Leaving"]));
      return;
    default:
      note(`Unknown command /${word}. Type /help for the list.`, "error");
  }
}

function submit() {
  const input = $("input");
  const text = input.value.replace(/\s+$/, "");
  if (!text.trim()) return;
  const b = currentBuffer();
  const key = state.active;
  state.history.set(key, text);
  input.value = "";
  autosize();
  if (text.startsWith("/") && !text.startsWith("//")) {
    command(text);
  } else if (b && b.kind !== "server") {
    sendText(b.name, text.startsWith("//") ? text.slice(1) : text);
    if (state.typingSent) sendTyping("done");
  } else {
    note("This is the server's view: type /help, or pick a room.", "error");
  }
}

function sendTyping(status) {
  const b = currentBuffer();
  if (!b || b.kind === "server" || !state.caps.has("message-tags")) return;
  send(buildLine("TAGMSG", [b.name], { "+typing": status }));
  state.typingSent = status === "active" ? Date.now() : 0;
}

function autosize() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight + 2, window.innerHeight * 0.4) + "px";
}

function completeNick(input) {
  const b = currentBuffer();
  if (!b) return false;
  const upto = input.value.slice(0, input.selectionStart);
  const match = /(\S+)$/.exec(upto);
  if (!match) return false;
  const partial = fold(match[1]);
  const nicks = b.kind === "room" ? [...b.members.keys()] : [b.name];
  const found = nicks.find((n) => fold(n).startsWith(partial) && fold(n) !== fold(state.nick));
  if (!found) return false;
  const suffix = match.index === 0 ? ": " : " ";
  input.setRangeText(found + suffix, match.index, input.selectionStart, "end");
  return true;
}

// ---------------------------------------------------------------- wiring

function start(nick) {
  state.started = true;
  setNick(nick);
  buffer("*", "server");
  for (const name of [LOBBY, ...savedList("charla.rooms")]) buffer(name, "room");
  activate(fold(LOBBY));
  connect();
}

function validNick(nick) {
  return /^[A-Za-z[\]\\`_^{|}][A-Za-z0-9[\]\\`_^{|}-]{0,29}$/.test(nick);
}

document.addEventListener("DOMContentLoaded", () => {
  renderNotifyButton();
  const input = $("input");
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
    input.focus();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === "Tab" && !e.shiftKey && input.value) {
      if (completeNick(input)) e.preventDefault();
    } else if (e.key === "ArrowUp" && !input.value && state.history.has(state.active)) {
      e.preventDefault();
      input.value = state.history.get(state.active);
      autosize();
    }
  });
  input.addEventListener("input", () => {
    autosize();
    const text = input.value;
    if (text && !text.startsWith("/") && Date.now() - state.typingSent > TYPING_EVERY) sendTyping("active");
    else if (!text && state.typingSent) sendTyping("done");
  });
  input.addEventListener("paste", () => setTimeout(autosize));
  $("log").addEventListener("scroll", () => {
    const b = currentBuffer();
    if (b && $("log").scrollTop < 150) loadOlder(b);
  });
  document.addEventListener("keydown", (e) => {
    if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      const keys = [...state.order, "*"];
      const at = keys.indexOf(state.active);
      const next = keys[(at + (e.key === "ArrowUp" ? -1 : 1) + keys.length) % keys.length];
      activate(next);
    } else if (e.key === "Escape") {
      $("app").classList.remove("show-sidebar", "show-members");
      document.querySelector(".picker")?.remove();
    }
  });
  $("open-sidebar").addEventListener("click", () => $("app").classList.toggle("show-sidebar"));
  $("open-members").addEventListener("click", () => {
    const app = $("app");
    if (matchMedia("(max-width: 900px)").matches) app.classList.toggle("show-members");
    else app.classList.toggle("no-members");
  });
  $("scrim").addEventListener("click", () => $("app").classList.remove("show-sidebar", "show-members"));
  $("server-buffer").addEventListener("click", () => activate("*"));
  $("add-room").addEventListener("click", () => {
    input.value = "/join #";
    input.focus();
  });
  $("add-dm").addEventListener("click", () => {
    input.value = "/msg ";
    input.focus();
  });
  $("notify").addEventListener("click", async () => {
    if (Notification.permission === "default") await Notification.requestPermission();
    renderNotifyButton();
  });
  document.addEventListener("visibilitychange", () => {
    const b = currentBuffer();
    if (!document.hidden && b) {
      b.unread = 0;
      b.mention = false;
      renderSidebar();
    }
  });
  document.addEventListener("click", (e) => {
    const picker = document.querySelector(".picker");
    if (picker && !picker.contains(e.target) && !e.target.classList.contains("react-button")) picker.remove();
  });

  const nickInput = $("nick-input");
  $("welcome").addEventListener("cancel", (e) => e.preventDefault());
  $("welcome-form").addEventListener("submit", (e) => {
    const nick = nickInput.value.trim();
    if (!validNick(nick)) {
      e.preventDefault();
      nickInput.setCustomValidity("Letters, digits and _ - [ ] { } ^ ` |, not starting with a digit or -, at most 30.");
      nickInput.reportValidity();
      return;
    }
    const remember = $("remember-input").checked;
    const password = $("password-input").value;
    if (password) {
      const mode = document.querySelector("input[name=account-mode]:checked").value;
      state.login = { account: nick, password, mode };
      keep("charla.login", state.login, remember);
    }
    if (state.needServerPassword) {
      state.serverPassword = $("server-password-input").value;
      keep("charla.server-password", state.serverPassword, remember);
    }
    $("password-input").value = "";
    $("server-password-input").value = "";
    if (state.started) {
      setNick(nick);
      const old = state.socket;
      state.socket = null;
      old?.close();
      state.halted = false;
      state.retry = 0;
      connect();
    } else {
      start(nick);
    }
  });
  nickInput.addEventListener("input", () => nickInput.setCustomValidity(""));
  $("me-nick").addEventListener("click", () => openWelcome(""));
  if (state.nick && validNick(state.nick)) start(state.nick);
  else openWelcome("");
});

// The welcome dialog: the nick, optionally an account, and a private server's password when
// the server asked for one. `error`: why it is shown again.
function openWelcome(error) {
  const welcome = $("welcome");
  $("nick-input").value = state.nick || "";
  $("server-password-field").hidden = !state.needServerPassword;
  const shown = $("welcome-error");
  shown.textContent = error;
  shown.hidden = !error;
  if (!welcome.open) welcome.showModal();
  (state.needServerPassword ? $("server-password-input") : $("nick-input")).focus();
}
