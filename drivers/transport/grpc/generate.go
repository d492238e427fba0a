package grpc

// Regenerate proto/offsync/sync/v1 after editing sync.proto (needs protoc;
// the Go plugins are the tools pinned in go.mod):
//go:generate sh -c "protoc -I proto --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-go-grpc=$(go tool -n protoc-gen-go-grpc) --go_out=proto --go_opt=paths=source_relative --go-grpc_out=proto --go-grpc_opt=paths=source_relative offsync/sync/v1/sync.proto"
