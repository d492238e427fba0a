//go:build race

package server_test

// raceEnabled shrinks the heaviest scenarios under the race detector, where
// the pure-Go SQLite runs about twenty times slower.
const raceEnabled = true
