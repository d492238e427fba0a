// Package storetest is the conformance suite of core.Store. Every store
// driver runs it from its own tests, and so can a third party's:
//
//	func TestConformance(t *testing.T) { storetest.Run(t, myHarness{}) }
//
// Each test is also exported (TestApplyPageKeepsPendingRows, ...), so a
// driver can run one alone. The suite imports only core: it brings its own
// typed model (Item, with a local-only column) and document table (Notes)
// and registers them on every store the harness makes.
//
// The TestBatch tests check core.BatchTx against the one-row methods; they
// skip a store whose transactions do not implement it.
package storetest
