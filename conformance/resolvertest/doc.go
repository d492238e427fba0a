// Package resolvertest is the conformance suite of core.Resolver: built-in
// strategies, user functions and plugins all run it.
//
//	func TestConformance(t *testing.T) { resolvertest.Run(t, myHarness{}) }
//
// It checks the contract every resolver obeys, on conflicts of every shape
// (an upsert against a live record or a tombstone, a delete against a newer
// version, a record missing at the authority): answers are known actions,
// AcceptMerged carries data without reserved field names, the same conflict
// gets the same answer, a cancelled context is honoured, and a
// core.BatchResolver answers one resolution per conflict, in order, equal to
// the single answers. Each test is exported.
package resolvertest
