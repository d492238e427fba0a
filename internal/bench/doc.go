// Package bench is the harness behind `offsync bench`: it generates the
// standard data set (the Item record, about 215 bytes of business data:
// id, title, body, count, done, kept in a typed table), runs an offsync
// server and its clients as separate processes on 127.0.0.1, repeats each
// scenario, and reports the median of the runs against the targets of the
// benchmark issue, next to the physical limits (JSON decode and SQLite
// insert of the same rows) measured in the same run.
//
// The processes are the offsync binary itself re-executed with a hidden
// worker command: Run starts them through Config.Command, and the worker
// command calls Worker with the Spec it was given. A server worker serves
// REST over a durable SQLite authority (synchronous FULL) and prints its
// address; a client worker performs one scenario and prints one JSON result
// line.
package bench
