// Package bench is the harness behind `offsync bench`: it generates the
// standard data set (the Item record, about 215 bytes of business data:
// id, title, body, count, done, kept in a typed table), runs an offsync
// server and its clients as separate processes on 127.0.0.1, runs each
// scenario on every transport and authority store asked for, repeats it,
// and reports the median of the runs against the targets of the benchmark
// issues, next to the physical limits (JSON decode and SQLite insert of the
// same rows) measured in the same run.
//
// The processes are the offsync binary itself re-executed with a hidden
// worker command: Run starts them through Config.Command, and the worker
// command calls Worker with the Spec it was given. A server worker opens
// the authority's store (SQLite with synchronous FULL, or Postgres), serves
// every registered server half over it (server.Transports: the HTTP halves
// mounted on one listener, a half with a listener of its own on another
// port) and prints each transport's endpoint; a client worker opens its
// transport by name (core.OpenTransport) at that endpoint, performs one
// scenario and prints one JSON result line, with the CPU time (user+sys,
// from rusage) of itself and of the server during the timed work.
package bench
