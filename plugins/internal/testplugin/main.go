// Command testplugin is a resolver plugin for the plugins package's tests.
// What it does with a conflict depends on the conflict's ID:
//
//	garbage  answers an action the protocol does not know
//	error    fails with an error wrapping core.ErrRejected
//	panic    panics inside the resolver
//	exit     exits the process in the middle of the call
//	block    writes its pid to $TESTPLUGIN_PIDFILE, waits for the call's
//	         context to end, then writes ctx.Err() to $TESTPLUGIN_CTXFILE
//	other    AcceptMerged of the local data laid over the server's, plus
//	         "resolved_by": "testplugin"
//
// It is not a BatchResolver, so plugins.Serve loops over batches. With
// TESTPLUGIN_PROTOCOL set it speaks that protocol version instead, and it
// writes one line to stderr when it starts.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/hashicorp/go-plugin"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/plugins"
)

func main() {
	fmt.Fprintln(os.Stderr, "testplugin: started")
	if v := os.Getenv("TESTPLUGIN_PROTOCOL"); v != "" {
		n, _ := strconv.Atoi(v)
		hs := plugins.Handshake
		hs.ProtocolVersion = uint(n)
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: hs,
			Plugins:         plugin.PluginSet{"resolver": &plugin.NetRPCUnsupportedPlugin{}},
			GRPCServer:      plugin.DefaultGRPCServer,
		})
		return
	}
	plugins.Serve(core.ResolverFunc(resolve), &plugins.ServeOptions{Name: "testplugin", MaxBatch: 3})
}

func resolve(ctx context.Context, c core.Conflict) (core.Resolution, error) {
	switch c.ID {
	case "garbage":
		return core.Resolution{Action: 42}, nil
	case "error":
		return core.Resolution{}, fmt.Errorf("%w: testplugin refuses %s", core.ErrRejected, c.ID)
	case "panic":
		panic("testplugin panics")
	case "exit":
		os.Exit(3)
	case "block":
		if f := os.Getenv("TESTPLUGIN_PIDFILE"); f != "" {
			_ = os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o600)
		}
		<-ctx.Done()
		if f := os.Getenv("TESTPLUGIN_CTXFILE"); f != "" {
			_ = os.WriteFile(f, []byte(ctx.Err().Error()), 0o600)
		}
		return core.Resolution{}, ctx.Err()
	}
	var local, server map[string]any
	var err error
	if c.Local != nil {
		if local, err = c.Local.Fields(); err != nil {
			return core.Resolution{}, err
		}
	}
	if c.Server != nil {
		if server, err = c.Server.Fields(); err != nil {
			return core.Resolution{}, err
		}
	}
	merged := core.DefaultMerge(local, server)
	merged["resolved_by"] = "testplugin"
	return core.AcceptMerged(merged), nil
}
