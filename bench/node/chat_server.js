// The chat benchmark's baseline: node's socket.io server doing a plain room broadcast.
//
//   node bench/node/chat_server.js --port 8091
//
// `golive bench chat --baseline node` starts it (pinned like golive serve) and stops it
// with SIGTERM. It speaks just enough of golive's protocol (docs/protocol.md) for the
// bench's light clients (bench/chat_clients.py), with the same msgpack parser:
//   connect with auth {token}  any non-empty token is the user id (no accounts here)
//   room:join {user_id, media}  -> {ok, live, offer: null, viewers, ice_servers: []}
//   chat:send {live_id, text}    -> {ok, message: item}, and one
//                                   chat:messages {live_id, prev, items: [item]}
//                                   emit to the room per line (no batching, no storage)
// Bad input gets {ok: false, error: {code, message}}; GET /healthz answers "ok".
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const msgpackParser = require("socket.io-msgpack-parser");

const TEXT_MAX = 300; // engine/chat_rules.py TEXT_MAX
const TOKEN_MAX = 200;

function parsePort(argv) {
  const i = argv.indexOf("--port");
  const port = i >= 0 ? Number(argv[i + 1]) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error("usage: node chat_server.js --port N");
    process.exit(2);
  }
  return port;
}

function error(code, message) {
  return { ok: false, error: { code, message } };
}

function isMap(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  } else {
    res.writeHead(404);
    res.end();
  }
});

const io = new Server(httpServer, {
  parser: msgpackParser,
  serveClient: false,
  perMessageDeflate: false, // golive's frames are not compressed either
  maxHttpBufferSize: 64 * 1024,
});

io.use((socket, next) => {
  const token = isMap(socket.handshake.auth) ? socket.handshake.auth.token : undefined;
  if (typeof token !== "string" || !token || token.length > TOKEN_MAX) {
    const err = new Error("auth {token} is required");
    err.data = { code: "unauthorized" };
    return next(err);
  }
  socket.data.user = { id: token, username: token, display_name: token };
  next();
});

const lastId = new Map(); // live id -> the id of the last line sent to it
let sequence = 0;
io.of("/").adapter.on("delete-room", (room) => lastId.delete(room)); // bounded by rooms

io.on("connection", (socket) => {
  const acked = (handler) => (data, ack) => {
    if (typeof ack !== "function") return; // every request takes an ack
    try {
      ack(isMap(data) ? handler(data) : error("invalid", "payload must be a map"));
    } catch (exc) {
      console.error(exc);
      ack(error("unavailable", String(exc)));
    }
  };

  socket.on("room:join", acked((data) => {
    if (typeof data.user_id !== "string" || !data.user_id) {
      return error("invalid", "user_id must be a non-empty string");
    }
    if (data.user_id === socket.data.user.id) {
      return error("invalid", "you cannot join your own live");
    }
    const liveId = "node-" + data.user_id;
    socket.join(liveId);
    const live = { live_id: liveId, creator_id: data.user_id, title: "node baseline",
                   started_at: 0 };
    const viewers = io.sockets.adapter.rooms.get(liveId)?.size ?? 0;
    return { ok: true, live, offer: null, viewers, ice_servers: [] };
  }));

  socket.on("chat:send", acked((data) => {
    if (typeof data.live_id !== "string" || !socket.rooms.has(data.live_id)) {
      return error("not_found", "join that live first");
    }
    const text = typeof data.text === "string" ? data.text.trim() : "";
    if (!text || text.length > TEXT_MAX) {
      return error("invalid", `a message must be 1-${TEXT_MAX} characters`);
    }
    const now = Date.now();
    const item = { id: `${now}-${sequence++}`, kind: "message", at: now / 1000,
                   user: socket.data.user, text };
    const prev = lastId.get(data.live_id) ?? null;
    lastId.set(data.live_id, item.id);
    io.to(data.live_id).emit("chat:messages", { live_id: data.live_id, prev, items: [item] });
    return { ok: true, message: item };
  }));
});

function stop() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

httpServer.listen(parsePort(process.argv), "127.0.0.1");
