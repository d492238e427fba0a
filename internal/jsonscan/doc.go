// Package jsonscan is the JSON reading the hot paths share.
//
// ReadRecord and DecodeRecord read the wire's flat record objects (a pull
// page's items, a push answer's record) with jsontext's Decoder
// (github.com/go-json-experiment/json), which checks the syntax as it reads:
// one pass instead of encoding/json's Valid and a walk, measured 3–5×
// faster on a page of the bench's records (docs/benchmarks.md). Every
// transport's client should read records through it.
//
// Scanner is a small strict tokenizer for flat JSON objects read in place
// without a decoder: the bun stores decoding a record's data into statement
// arguments, and the server canonicalizing a payload for its request hash.
// Its users read an object member by member and leave anything unusual
// (escapes, nesting) to encoding/json.
package jsonscan
