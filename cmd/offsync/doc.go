// Command offsync is offsync's command line: the reference server (serve),
// and tools to sync, inspect and check replicas and servers.
//
// A newcomer's first command, from a checkout:
//
//	go run ./cmd/offsync serve
//	curl localhost:8080/health
//
// Every subcommand lives in its own file and registers itself on rootCmd
// from an init function:
//
//	func init() { rootCmd.AddCommand(fooCmd) }
//
// Exit codes: 0 success, 1 failure, 2 usage error (unknown command or flag,
// bad flag value, wrong number of arguments).
package main
