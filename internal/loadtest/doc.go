// Package loadtest holds what the hold and load tests share: the server
// under load runs in a child process (the test binary run again for one
// test function) so that its resident memory is measured alone, the
// child's address reaches the parent on a line of its standard output, the
// child serves until the parent closes its standard input, and latencies
// are summed up as percentiles.
package loadtest
