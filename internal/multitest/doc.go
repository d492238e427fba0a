// Package multitest holds what the tests of several authority instances on
// one Postgres database share: a Failover HTTP proxy that lets one push
// commit and then kills its instance before the answer leaves, a Balancer
// (a TCP proxy, so every wire form passes: HTTP, WebSocket, gRPC) whose
// clients move to another instance when theirs dies, and a trigger that
// logs every row version the authority writes with the op marker each
// record carries, so that "every op applied exactly once" can be counted.
//
// multitest is internal: applications must not import it.
package multitest
