//go:build race

package core_test

// raceEnabled is set when the tests run under the race detector, where the
// pure-Go SQLite is an order of magnitude slower: the heaviest tests then run
// smaller, or only in the normal pass of ./scripts/test.
const raceEnabled = true
