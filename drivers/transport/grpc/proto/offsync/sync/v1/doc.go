// Package syncv1 is the generated Go code of the offsync sync service,
// version 1 (sync.proto beside this file). Go programs use the grpc driver
// (package github.com/offsync/offsync/drivers/transport/grpc) instead; other
// languages generate their own code from sync.proto, which needs no other
// file. Regenerate with `go generate ./drivers/transport/grpc`.
package syncv1
