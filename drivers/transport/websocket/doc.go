// Package websocket is offsync's WebSocket transport: pull, push, get and
// realtime notices multiplexed on one socket, full duplex, so that a replica
// that stays connected pays neither an HTTP request per page or batch nor a
// second connection for notices.
//
// The client (NewClient, or core.OpenTransport("websocket", "ws://host:port/ws"))
// implements core.Transport, core.Getter, core.Subscriber, core.Batcher,
// core.Pipeliner (two pushes in flight on the socket, so that the server
// applies one batch while the next is on its way) and core.PageStreamer (a
// walk streamed over one pullPages request: the server reads the next page
// while the replica applies the last, within a window of pages the client
// grants one credit at a time; against a server without streams it pulls
// page by page). Its socket reader never waits for a slow consumer: a
// stream's pages wait in a buffer of its window, which the server cannot
// exceed. It connects lazily, numbers its requests (many in flight, answers matched
// by id, each honouring its context), reconnects a socket that carries
// subscriptions with capped, jittered backoff and then delivers a Notice
// with Gap, asks its token source again after the server closed with 4001,
// and cuts a half-open connection after two silent heartbeats. Its errors
// are classified as the REST client's (core.ErrUnavailable: retry later;
// an op's own refusal: its result), so the engine stays the only retry layer.
//
// The server half (NewServer, or by name: server.OpenServer(ctx,
// "websocket", ...), mounted at /ws) serves any core.Transport, normally a
// *server.Service: it authenticates through server.Authenticate (the
// handshake's Authorization header or a first auth frame), lets the
// authority apply scope and limits, answers at most Limits.MaxInFlight
// requests per socket at a time (429 beyond; a running stream counts as
// one), streams a walk through the authority's own loop (core.PageStreamer,
// server.Service.PullPages) sending a page only against a credit, keeps a
// bounded send queue (a client too slow to read is closed with 1008;
// pages of streams take at most half of it), pings every
// Limits.Heartbeat, closes a message over Limits.MaxMessage with 1009 and
// every socket with 1001 on Shutdown. Notices come from the authority's own
// fan-out (core.Subscriber).
//
// The frames (subprotocol "offsync.v1", one JSON object per text message,
// ops and results exactly as REST's POST /batch) are specified in
// docs/protocol.md, section "WebSocket".
//
// The WebSocket library is github.com/coder/websocket: the design named
// nhooyr.io/websocket, whose maintenance moved to Coder under that import
// path (same API, maintained, context-first, no dependencies). Frames are
// encoded and decoded with encoding/json.
package websocket
