// The example game's browser client. It speaks the host's line protocol over
// a WebSocket, one text message per line: it sends `login <id> <ticket>`,
// `work`, ...; the host answers every request, in order, with `ok ...` or
// `err <code> ...`, and may send `push ...` at any time. Replies are matched
// to requests first in, first out; pushes are shown apart.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const log = $("log");
  let ws = null;
  let player = "";
  let seq = 0;          // requests sent from this page: each log entry's data-seq
  let pending = [];     // log entries of requests not answered yet, oldest first

  function setConn(cls, text) {
    $("conn").className = "conn " + cls;
    $("conn").textContent = text;
  }

  function setPlaying(on) {
    for (const el of document.querySelectorAll("#game button, #game input")) el.disabled = !on;
  }

  function setConnected(on) {
    $("logout-btn").disabled = !on;
  }

  function append(li) {
    log.append(li);
    log.scrollTop = log.scrollHeight;
  }

  // send logs a request and sends it; shown, if set, replaces the request in
  // the log (a ticket is never shown).
  function send(line, shown) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const li = document.createElement("li");
    li.dataset.seq = String(++seq);
    li.dataset.cmd = line.split(/\s+/)[0].toLowerCase();
    li.className = "waiting";
    const req = document.createElement("span");
    req.className = "req";
    req.textContent = shown || line;
    const reply = document.createElement("span");
    reply.className = "reply";
    li.append(req, reply);
    append(li);
    pending.push(li);
    ws.send(line);
  }

  function onMessage(text) {
    if (text === "push" || text.startsWith("push ")) {
      const li = document.createElement("li");
      li.className = "push";
      li.textContent = text.slice(5);
      append(li);
      return;
    }
    const li = pending.shift();
    if (!li) { // the host speaks first: err idle, err full, err draining
      const s = document.createElement("li");
      s.className = "server " + (text.startsWith("ok") ? "ok" : "err");
      const reply = document.createElement("span");
      reply.className = "reply";
      reply.textContent = text;
      s.append(reply);
      append(s);
      return;
    }
    answer(li, text);
  }

  function answer(li, text) {
    const ok = text === "ok" || text.startsWith("ok ");
    li.classList.remove("waiting");
    li.classList.add("answered", ok ? "ok" : "err");
    const reply = li.querySelector(".reply");
    const cmd = li.dataset.cmd;
    reply.textContent = cmd === "help" ? text.split(" | ").join("\n   ") : text;
    // Coin replies end in the major version of the module that handled them.
    const v = ok && /\sv(\d+)$/.exec(text);
    if (v) {
      li.dataset.version = "v" + v[1];
      const badge = document.createElement("span");
      badge.className = "version";
      badge.title = "handled by version " + v[1] + " of its module, as the reply says";
      badge.textContent = "v" + v[1];
      li.append(badge);
    }
    log.scrollTop = log.scrollHeight;
    if (cmd === "help" && ok) showModules(text);
    if (cmd === "login") {
      if (ok) {
        setConn("on", "player " + player);
        setPlaying(true);
        send("help"); // fills in the active modules
      } else {
        setConn("connecting", "connected, not logged in");
      }
    }
  }

  // showModules lists the module versions a help reply names: `... [coin 1.0.0]`.
  function showModules(text) {
    const mods = new Map();
    for (const m of text.matchAll(/\[([^\s\]]+) ([^\s\]]+)\]/g)) mods.set(m[1], m[2]);
    const list = $("module-list");
    list.replaceChildren();
    for (const [name, version] of [...mods].sort()) {
      const span = document.createElement("span");
      span.className = "module";
      span.dataset.module = name;
      span.textContent = name + " " + version;
      list.append(span);
    }
  }

  function connect(login, shown) {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    setConn("connecting", "connecting");
    const sock = new WebSocket(url);
    ws = sock;
    sock.onopen = () => {
      setConn("connecting", "connected, not logged in");
      setConnected(true);
      send(login, shown);
    };
    sock.onmessage = (ev) => { if (ws === sock) onMessage(String(ev.data)); };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      for (const li of pending) answer(li, "err closed no reply: the connection closed");
      pending = [];
      setPlaying(false);
      setConnected(false);
      setConn("off", "not connected (" + ev.code + (ev.reason ? " " + ev.reason : "") + ")");
    };
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("player").value.trim();
    const ticket = $("ticket").value.trim();
    if (!/^[1-9][0-9]*$/.test(id) || ticket === "" || /\s/.test(ticket)) {
      setConn("off", "a player id (a number) and a ticket, please");
      return;
    }
    player = id;
    const login = "login " + id + " " + ticket;
    const shown = "login " + id + " <ticket>";
    if (ws && ws.readyState === WebSocket.OPEN) send(login, shown);
    else connect(login, shown);
  });

  $("logout-btn").addEventListener("click", () => { if (ws) ws.close(1000, "logged out"); });

  for (const b of document.querySelectorAll("#game button[data-cmd]")) {
    b.addEventListener("click", () => send(b.dataset.cmd));
  }

  $("name-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("name").value.trim();
    if (name !== "") send("name " + name);
  });

  $("send-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const line = $("line").value.trim();
    if (line !== "") {
      send(line);
      $("line").value = "";
    }
  });
})();
