// Package transporttest is the conformance suite of core.Transport. Every
// transport driver runs it from its own tests, and so can a third party's:
//
//	func TestConformance(t *testing.T) { transporttest.Run(t, myHarness{}) }
//
// The harness makes stores (for the authority and the replicas, so that the
// suite imports no driver) and clients connected to a given authority, and
// says which optional powers its clients have (Features). The suite builds a
// reference authority (server.New) over a store of the harness and drives
// replicas (core.Engine) through the harness's clients: two replicas, offline
// edits, conflicts, deletes and tombstones, paging, microsecond versions,
// idempotent replay after a lost answer, scope invisibility, realtime notices
// and fetching one record; and, for a client that is a core.PageStreamer,
// the contract of PullPages and replicas whose walks are streamed
// (TestStreamedPages; InProcess streams when its authority does).
//
// Every scenario runs three times: over the bare client, through the
// core.Transport fault wrapper of conformance/faults, and, for a client that
// speaks HTTP (Features.HTTP), through its http.RoundTripper fault wrapper.
// TestConvergence is a property test (pgregory.net/rapid) of random writes
// and syncs by three replicas under random faults.
//
// Each test is exported (TestPushPull, TestLostAnswer, ...), so a driver can
// run one alone. Errors are checked with errors.Is only.
package transporttest
