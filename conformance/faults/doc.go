// Package faults injects failures between a replica and its authority, for
// the reliability tests of offsync and of any driver.
//
// An Injector decides, call by call, which faults to inject; Wrap puts it in
// front of a core.Transport and WrapHTTP in front of an http.RoundTripper.
// The wrapped transport implements core.Getter, core.Subscriber,
// core.Batcher, core.Pipeliner and core.PageStreamer exactly when the inner
// one does.
//
// # Faults
//
// Each fault models something a real network or a real crash does:
//
//   - DropRequest: the request is lost before the authority sees it (a
//     refused connection, a timeout before sending). The call fails with an
//     error wrapping core.ErrUnavailable; nothing was processed.
//   - DropAnswer: the authority processed and committed the request, then the
//     answer was lost (a connection reset after the commit, a client
//     timeout). The call fails with an error wrapping core.ErrUnavailable; the
//     replica must re-send with the same OpIDs and get the idempotent answer.
//   - Duplicate: the request reaches the authority twice (a proxy or a lower
//     layer retried it). The caller gets the second answer, which is the
//     authority's replay of the first.
//   - Delay: the call is held before it is sent, for Rule.Delay or until
//     Rule.Release fires; the caller's context ends the wait early (an error
//     wrapping core.ErrUnavailable and the context's error). It models a slow
//     link, and with Release it lets a test hold one call while others run.
//   - Reorder (Push): the ops of one batch reach the authority in another
//     order, ops of one record included; the answers are put back in the
//     caller's order. It models an authority that does not keep batch order,
//     and checks that a replica matches answers to ops by position only.
//   - CutPage (Pull): the page was served, then the connection broke before
//     the replica had it: the call fails with core.ErrUnavailable.
//   - TruncatePage (Pull): the first Rule.Keep records arrive with the full
//     page's NextPageToken, so the rest of the page is silently lost. No
//     correct transport does this: it is a negative control that
//     convergence checks must catch.
//   - ShortPage (Pull): the first Rule.Keep records arrive as a last page
//     (no NextPageToken, Remaining -1). It models an authority that ends a
//     walk early; a correct replica resumes from its cursor next time and
//     loses nothing.
//   - CloseStream (Notice): a Subscribe stream closes instead of delivering
//     a notice, as when the stream fails for good; the inner subscription is
//     cancelled.
//   - Gap (Notice): a notice is lost and a Notice{Kind, Gap: true} arrives in
//     its place, as after a reconnect; the replica must pull every kind.
//   - CutBody (HTTP): the response body ends with io.ErrUnexpectedEOF after
//     Rule.Keep bytes, as when a connection is cut mid-body. A body no longer
//     than Keep is not cut.
//
// # Connections
//
// Conns reaches below a wire protocol, to the connections a client dials
// (a socket, an HTTP/2 connection): Conns.Wrap wraps a net.Conn, and each
// Write on it is a call of Method Conn. DropRequest cuts the connection
// instead of writing; DropAnswer writes, then cuts the connection at its
// next Read that gets bytes (the peer had the request, its answer is lost);
// CutBody writes the first Rule.Keep bytes and cuts; Delay holds the write.
// On demand, Conns.Cut cuts every live connection, Conns.CutOnRead arms a
// cut at the next Read that gets bytes on any of them, Conns.Stall makes them
// half-open (reads block, writes vanish, nothing is closed), and
// Conns.SetBudget cuts the connections opened afterwards once they have read
// or written so many bytes. A cut closes the real connection, so the peer
// sees it end; the wrapper's calls fail with an error wrapping
// core.ErrUnavailable.
//
// # Streams
//
// A walk streamed over core.PageStreamer is, for the injector, the pulls a
// walk page by page would make: each page of a PullPages stream is a call
// of Method Pull (Call.StreamPage is its position in the stream, Call.Pull
// the request that would have asked for it), so the rules of Method Pull
// reach streamed and page-by-page walks alike. DropRequest on the first
// page opens no stream; DropRequest, DropAnswer or CutPage on a later page
// end the stream after the pages before it with an error wrapping
// core.ErrUnavailable, as a lost connection does; TruncatePage and
// ShortPage cut the page as they cut a Pull's (ShortPage ends the stream
// there, without an error); Delay holds the stream before the page;
// Duplicate opens the stream twice, the first one's first page lost.
//
// Which calls get a fault is chosen by Rules: by method, by the Nth call of
// a method, by a predicate on the Call (ContainsOp selects pushes carrying a
// given op), at most Times times, and with a probability (Chance) drawn from
// a generator seeded by Options.Seed. The same seed and the same sequence of
// calls inject the same faults. Stats counts the calls and the faults that
// took effect; its String is meant for test logs.
//
// # Crash points
//
// A crash test runs the code under test in a child process that dies at a
// named point. The engine calls its Checkpoint hook with the names in
// Points; the wrappers here call Options.Checkpoint with AfterRequestSent
// (a push is about to reach the inner transport, or a non-GET HTTP request
// was written) and AfterAuthorityCommit (its answer is back, not yet
// returned). A Crasher counts the hits of each point and, at the Nth hit of
// the point named by the OFFSYNC_CRASH_AT environment variable
// ("after_answer:3"), sends its own process SIGKILL. The parent re-runs the
// test binary with that variable (CrashEnvFor), checks that the child died
// with Killed, and then checks what survived on disk.
package faults
