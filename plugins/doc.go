// Package plugins runs offsync conflict resolvers out of process, through
// hashicorp/go-plugin over gRPC: a team ships its conflict rules as a separate
// binary, written in Go with this package or in any language that speaks the
// protocol in proto/resolver/v1, and names it in the configuration.
//
// Plugin authors implement core.Resolver (and, to batch, core.BatchResolver)
// and call Serve from main:
//
//	func main() { plugins.Serve(myRules{}, &plugins.ServeOptions{Name: "inventory"}) }
//
// Hosts call Load, which verifies the binary (SHA-256 pinning, checked before
// the binary runs), starts it with a versioned handshake and AutoMTLS, and
// returns a resolver that also batches (core.BatchResolver) and is named
// "plugin:<basename>" (core.Named):
//
//	r, closer, err := plugins.Load(ctx, "/opt/rules/inventory", &plugins.LoadOptions{SHA256: sum})
//	defer closer.Close()
//	opts := &core.Options{Conflicts: core.Conflicts{Kinds: map[string]core.Resolver{"item": r}}}
//
// Importing this package also registers the resolver driver "plugin" (options
// "path", "sha256", "timeout"), so a configuration can name a binary per
// table; the resolver it returns implements io.Closer.
//
// Failures stay contained: when the plugin crashes, hangs past the call
// timeout, answers garbage or exits in the middle of a call, the call returns
// an error naming the plugin, the engine keeps that conflict's op in the
// outbox untouched and reports a SyncError of category resolver, the other ops
// go on, and the next call starts the plugin again.
//
// The generated protocol code is committed; regenerating it needs protoc with
// protoc-gen-go and protoc-gen-go-grpc on PATH:
//
//	apt-get install -y protobuf-compiler
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest
//	go generate ./plugins/...
package plugins

//go:generate protoc -I proto --go_out=proto --go_opt=paths=source_relative --go-grpc_out=proto --go-grpc_opt=paths=source_relative resolver/v1/resolver.proto
