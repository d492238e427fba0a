// Package resolverv1 is the generated Go code of the offsync resolver plugin
// protocol, version 1 (resolver.proto beside this file). Plugin authors in Go
// use the plugins package instead; other languages generate their own code
// from resolver.proto.
package resolverv1
