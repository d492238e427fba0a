// Package grpc is offsync's gRPC transport: the sync contract as the
// service offsync.sync.v1.Sync (proto/offsync/sync/v1/sync.proto), a client
// and a server half.
//
// The client (NewClient, or the "grpc" transport driver with a URL
// grpc://host:port or grpcs://host:port and options token, timeout, and
// ca_file or tls for a CA of one's own) is a
// core.Transport, core.Getter, core.Subscriber, core.Batcher,
// core.Pipeliner (two pushes in flight, each a stream) and
// core.PageStreamer (a walk's pages over one PullPages stream, or page by
// page with Pull from a server that does not list "stream-pull") over a
// *grpc.ClientConn it dials or one the caller supplies (Options.Conn). Every
// call carries metadata `authorization: Bearer <token>` from a token source
// that is asked once more, with refresh, after Unauthenticated; ctx's
// deadline is the call's deadline; statuses map to core's errors (the table
// in errors.go, built on the shared wire table). Subscribe re-opens a broken
// stream with backoff and sends a Gap notice after each reconnect; the
// connection pings every 30 s so an idle stream survives. Pushes are split
// under the server's max_batch and max_message, and a page too large to
// receive is asked for again with fewer rows.
//
// The server half (NewServer, registered as the "grpc" server half with a
// listener of its own, by default the HTTP port plus one) serves the
// service over any core.Transport, normally *server.Service, with the
// standard grpc.health.v1 service and server reflection beside it. One unary
// and one stream interceptor authenticate every call but Capabilities,
// health and reflection through
// server.Authenticate; scope, limits and idempotency stay in the authority.
// The edge limits come from server.Limits: MaxMessage is the receive limit
// (and a page is cut to fit it), MaxInFlight the concurrent streams of a
// connection, Heartbeat the keepalive (server pings; clients may ping every
// half heartbeat). PullPages streams the authority's own walk (a
// core.PageStreamer such as server.Service: the one server loop), a page a
// message, held back by HTTP/2 flow control; it runs under
// server.StreamContext, as Subscribe does, so a token's expiry ends it
// Unauthenticated. Subscribe streams come from the authority's own
// subscription; Shutdown ends them with Unavailable, then stops gracefully,
// and cuts what remains when its ctx ends.
//
// The generated code in proto/offsync/sync/v1 is committed: building never
// needs protoc. To regenerate after editing sync.proto, install protoc
// (Debian: apt-get install -y protobuf-compiler) and run
//
//	go generate ./drivers/transport/grpc
//
// which uses the protoc-gen-go and protoc-gen-go-grpc versions pinned as
// tools in go.mod (go tool -n prints their paths).
package grpc
