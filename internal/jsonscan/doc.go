// Package jsonscan is a small strict JSON tokenizer for the hot paths that
// take flat JSON objects apart without encoding/json: the bun stores
// decoding a record's data into statement arguments, and the server
// canonicalizing a payload for its request hash. Its users read an object
// member by member and leave anything unusual (escapes, nesting) to
// encoding/json.
package jsonscan
