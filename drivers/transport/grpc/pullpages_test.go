package grpc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	grpcgo "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/offsync/offsync/core"
	ogrpc "github.com/offsync/offsync/drivers/transport/grpc"
	syncv1 "github.com/offsync/offsync/drivers/transport/grpc/proto/offsync/sync/v1"
	"github.com/offsync/offsync/server"
)

// calls counts the RPCs a client makes, by method, seen by interceptors on
// the client's own connection.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *calls) add(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[method]++
}

func (c *calls) of(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[method]
}

// options are client options that count the client's calls in c.
func (c *calls) options(o ogrpc.Options) *ogrpc.Options {
	o.DialOptions = append(o.DialOptions,
		grpcgo.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpcgo.ClientConn, inv grpcgo.UnaryInvoker, opts ...grpcgo.CallOption) error {
			c.add(method)
			return inv(ctx, method, req, reply, cc, opts...)
		}),
		grpcgo.WithChainStreamInterceptor(func(ctx context.Context, desc *grpcgo.StreamDesc, cc *grpcgo.ClientConn, method string, streamer grpcgo.Streamer, opts ...grpcgo.CallOption) (grpcgo.ClientStream, error) {
			c.add(method)
			return streamer(ctx, desc, cc, method, opts...)
		}))
	return &o
}

const (
	pullMethod      = "/offsync.sync.v1.Sync/Pull"
	pullPagesMethod = "/offsync.sync.v1.Sync/PullPages"
)

// streamAll collects the pages PullPages yields for req.
func streamAll(t *testing.T, c core.PageStreamer, req core.PullRequest) ([]core.Page, error) {
	t.Helper()
	var pages []core.Page
	err := c.PullPages(t.Context(), req, func(p core.Page) error {
		pages = append(pages, p)
		return nil
	})
	return pages, err
}

// pullAll collects the pages of a walk pulled page by page, as the engine
// walks without streams.
func pullAll(t *testing.T, c core.Transport, req core.PullRequest) []core.Page {
	t.Helper()
	var pages []core.Page
	for {
		p, err := c.Pull(t.Context(), req)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		pages = append(pages, p)
		if p.NextPageToken == "" || len(p.Records) == 0 {
			return pages
		}
		last := p.Records[len(p.Records)-1]
		req.After, req.PageToken = core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}, p.NextPageToken
	}
}

// samePages fails unless got and want are the same pages (records, tokens
// and remaining counts).
func samePages(t *testing.T, what string, got, want []core.Page) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d pages, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s: page %d:\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
}

// scopedAuthority serves kind "note" to principals "one" and "two" (tokens
// of the same names), each scoped to its own rows, with rows of both and
// tombstones among one's.
func scopedAuthority(t *testing.T, opts *server.Options) *server.Service {
	t.Helper()
	var o server.Options
	if opts != nil {
		o = *opts
	}
	if o.Authenticate == nil {
		o.Authenticate = func(_ context.Context, tok string) (core.Principal, error) {
			if tok == "one" || tok == "two" {
				return core.Principal{ID: tok}, nil
			}
			return core.Principal{}, core.ErrUnauthorized
		}
	}
	o.Scope = func(_ context.Context, p core.Principal, _ string) (*core.Filter, error) {
		return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
	}
	svc := newAuthority(t, &o)
	for _, who := range []string{"one", "two"} {
		ctx := core.WithPrincipal(t.Context(), core.Principal{ID: who})
		var ops []core.Op
		for i := range 23 {
			ops = append(ops, core.Op{OpID: fmt.Sprintf("%s-%d", who, i), Kind: "note", ID: fmt.Sprintf("%s-%02d", who, i),
				Type: core.OpUpsert, Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		}
		res, err := svc.Push(ctx, ops)
		if err != nil {
			t.Fatal(err)
		}
		if who == "one" {
			var dels []core.Op
			for i := 0; i < 23; i += 4 {
				dels = append(dels, core.Op{OpID: fmt.Sprintf("del-%d", i), Kind: "note", ID: ops[i].ID, Type: core.OpDelete,
					BaseUpdatedAt: res[i].Record.UpdatedAt})
			}
			if res, err = svc.Push(ctx, dels); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range res {
			if r.Status != core.StatusApplied {
				t.Fatalf("seed: %+v", r)
			}
		}
	}
	return svc
}

// TestPullPagesIsPull: a walk streamed over one PullPages call yields
// exactly the pages a page-by-page pull answers (records, tombstones,
// tokens, remaining), within the caller's scope, with no Pull call.
func TestPullPagesIsPull(t *testing.T) {
	svc := scopedAuthority(t, nil)
	r := serve(t, svc, server.TransportConfig{})
	var n calls
	c := dial(t, r.addr, "one", n.options(ogrpc.Options{}))
	caps, err := c.Capabilities(t.Context())
	if err != nil || !slices.Contains(caps.GetCapabilities(), "stream-pull") {
		t.Fatalf("capabilities %v, %v: want stream-pull listed", caps.GetCapabilities(), err)
	}
	for _, limit := range []int{4, 23, 1000} {
		req := core.PullRequest{Kind: "note", Limit: limit}
		want := pullAll(t, c, req)
		pulls, streams := n.of(pullMethod), n.of(pullPagesMethod)
		got, err := streamAll(t, c, req)
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		samePages(t, fmt.Sprintf("limit %d", limit), got, want)
		if n.of(pullMethod) != pulls || n.of(pullPagesMethod) != streams+1 {
			t.Errorf("limit %d: %d Pull and %d PullPages calls for a streamed walk, want 0 and 1",
				limit, n.of(pullMethod)-pulls, n.of(pullPagesMethod)-streams)
		}
		tombs, rows := 0, 0
		for _, p := range got {
			for _, rec := range p.Records {
				rows++
				if !strings.HasPrefix(rec.ID, "one-") {
					t.Fatalf("principal one was streamed %s", rec.ID)
				}
				if !rec.DeletedAt.IsZero() {
					tombs++
				}
			}
		}
		if rows != 23 || tombs != 6 {
			t.Errorf("limit %d: %d rows, %d tombstones; want 23 and 6", limit, rows, tombs)
		}
	}
	// A walk that starts after a cursor, and the other principal's walk.
	first := pullAll(t, c, core.PullRequest{Kind: "note", Limit: 5})[0]
	last := first.Records[4]
	req := core.PullRequest{Kind: "note", Limit: 5, After: core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}}
	got, err := streamAll(t, c, req)
	if err != nil {
		t.Fatal(err)
	}
	samePages(t, "after a cursor", got, pullAll(t, c, req))
	two := dial(t, r.addr, "two", nil)
	got, err = streamAll(t, two, core.PullRequest{Kind: "note", Limit: 7})
	if err != nil {
		t.Fatal(err)
	}
	samePages(t, "principal two", got, pullAll(t, two, core.PullRequest{Kind: "note", Limit: 7}))
	if len(got) != 4 || got[0].Records[0].ID != "two-00" {
		t.Errorf("principal two: %d pages starting with %s, want 4 starting with two-00", len(got), got[0].Records[0].ID)
	}
}

// TestPullPagesBadRequest: a request Pull refuses is refused by PullPages
// with the same status and message, before any page.
func TestPullPagesBadRequest(t *testing.T) {
	svc := authorityWithToken(t)
	r := serve(t, svc, server.TransportConfig{})
	conn, raw := rawConn(t, r.addr)
	ctx := bearer(t.Context(), "Bearer good")
	cases := []struct {
		name   string
		req    *syncv1.PullRequest
		code   codes.Code
		msg    string
		reason string
	}{
		{"unknown kind", &syncv1.PullRequest{Kind: "Nope"}, codes.NotFound, `server: offsync: unknown kind: "Nope"`, "unknown_kind"},
		{"empty kind", &syncv1.PullRequest{}, codes.InvalidArgument, "kind: offsync: invalid input: empty kind", "bad_request"},
		{"forged page token", &syncv1.PullRequest{Kind: "todo", PageToken: "forged"}, codes.InvalidArgument,
			"server: page token: offsync: bad cursor: too short", "bad_cursor"},
		{"negative limit", &syncv1.PullRequest{Kind: "todo", Limit: -1}, codes.InvalidArgument,
			"offsync: invalid input: limit must not be negative, got -1", "bad_request"},
		{"cursor id without a time", &syncv1.PullRequest{Kind: "todo", After: &syncv1.Cursor{Id: "x"}}, codes.InvalidArgument,
			"offsync: invalid input: after.id needs after.updated_at", "bad_request"},
	}
	for _, tc := range cases {
		_, perr := raw.Pull(ctx, tc.req)
		wantStatus(t, "pull: "+tc.name, perr, tc.code, tc.msg, tc.reason)
		s, err := raw.PullPages(ctx, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Recv()
		if p != nil {
			t.Errorf("pull pages: %s: a page %v before the error", tc.name, p)
		}
		wantStatus(t, "pull pages: "+tc.name, err, tc.code, tc.msg, tc.reason)
	}
	// A request that cannot be decoded.
	s, err := conn.NewStream(ctx, &grpcgo.StreamDesc{ServerStreams: true}, syncv1.Sync_PullPages_FullMethodName, grpcgo.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	in := []byte{0x0a, 0x02, 'a', 0xff} // kind "a\xff"
	if err := s.SendMsg(&in); err != nil {
		t.Fatal(err)
	}
	s.CloseSend()
	var out []byte
	wantStatus(t, "pull pages: invalid UTF-8 in the kind", s.RecvMsg(&out), codes.InvalidArgument,
		"offsync: invalid input: the request message cannot be decoded: string field contains invalid UTF-8", "bad_request")
	// Without a token.
	s2, err := raw.PullPages(t.Context(), &syncv1.PullRequest{Kind: "todo"})
	if err == nil {
		_, err = s2.Recv()
	}
	wantStatus(t, "pull pages: no token", err, codes.Unauthenticated, "offsync: unauthorized: the token was refused", "unauthorized")

	// The client: the same refusals as the sentinels, nothing yielded.
	c := dial(t, r.addr, "good", nil)
	for _, tc := range []struct {
		req  core.PullRequest
		want error
	}{
		{core.PullRequest{Kind: "Nope"}, core.ErrUnknownKind},
		{core.PullRequest{Kind: "todo", PageToken: "forged"}, core.ErrBadCursor},
		{core.PullRequest{Kind: ""}, core.ErrInvalid},
		{core.PullRequest{Kind: "todo", After: core.Cursor{UpdatedAt: time.UnixMicro(1), ID: "a\xff"}}, core.ErrInvalid},
	} {
		got, err := streamAll(t, c, tc.req)
		if !errors.Is(err, tc.want) || len(got) != 0 {
			t.Errorf("client pull pages %+v: %d pages, %v; want none and %v", tc.req, len(got), err, tc.want)
		}
	}
	if n := rowsOf(t, svc, "todo"); n != 0 {
		t.Errorf("%d rows written by pulls", n)
	}
}

// TestPullPagesDefaultLimit: limit 0 is the server's default page size,
// over a stream as over Pull; the client's own default is PageSize.
func TestPullPagesDefaultLimit(t *testing.T) {
	svc := newAuthority(t, &server.Options{DefaultLimit: 3})
	fill(t, svc, "note", 7, 10)
	r := serve(t, svc, server.TransportConfig{})
	_, raw := rawConn(t, r.addr)
	s, err := raw.PullPages(t.Context(), &syncv1.PullRequest{Kind: "note"})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for {
		p, err := s.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		sizes = append(sizes, len(p.GetRecords()))
	}
	if fmt.Sprint(sizes) != "[3 3 1]" {
		t.Errorf("limit 0 streamed pages of %v rows, want [3 3 1]", sizes)
	}
	c := dial(t, r.addr, "", &ogrpc.Options{PageSize: 2})
	pages, err := streamAll(t, c, core.PullRequest{Kind: "note"})
	if err != nil || len(pages) != 4 {
		t.Errorf("client with PageSize 2: %d pages, %v; want 4", len(pages), err)
	}
}

// hooked is the authority with a hook on its page streams: read counts
// the pages it has read for them, beforeSend runs before the nth page of a
// stream goes to the server half (it may block), and every end of a stream
// is sent on ended.
type hooked struct {
	*server.Service
	read       atomic.Int64
	beforeSend func(ctx context.Context, n int)
	ended      chan error
}

func hook(svc *server.Service) *hooked { return &hooked{Service: svc, ended: make(chan error, 16)} }

func (h *hooked) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	n := 0
	err := h.Service.PullPages(ctx, req, func(p core.Page) error {
		h.read.Add(1)
		n++
		if h.beforeSend != nil {
			h.beforeSend(ctx, n)
		}
		return yield(p)
	})
	h.ended <- err
	return err
}

// waitEnded waits for the authority's stream to end, or fails after
// waitLimit.
func (h *hooked) waitEnded(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.ended:
		return err
	case <-time.After(waitLimit):
		t.Fatalf("the server's stream did not end within %v", waitLimit)
		return nil
	}
}

// TestPullPagesYieldError: yield's error stops the walk: PullPages returns
// it as it is, after the pages already yielded, and the server's stream
// ends.
func TestPullPagesYieldError(t *testing.T) {
	svc := newAuthority(t, nil)
	fill(t, svc, "note", 50, 10)
	h := hook(svc)
	r := serve(t, h, server.TransportConfig{})
	c := dial(t, r.addr, "", nil)
	stop := errors.New("enough")
	yielded := 0
	err := c.PullPages(t.Context(), core.PullRequest{Kind: "note", Limit: 2}, func(core.Page) error {
		yielded++
		if yielded == 2 {
			return stop
		}
		return nil
	})
	if err != stop || yielded != 2 {
		t.Errorf("PullPages returned %v after %d pages, want yield's error after 2", err, yielded)
	}
	if err := h.waitEnded(t); status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
		t.Logf("the server's stream ended with %v", err)
	}
	// The client is still usable.
	pages, err := streamAll(t, c, core.PullRequest{Kind: "note", Limit: 20})
	if err != nil || len(pages) != 3 {
		t.Errorf("next walk: %d pages, %v; want 3", len(pages), err)
	}
	h.waitEnded(t)
}

// TestPullPagesCancel: a ctx cancelled mid-walk ends PullPages with ctx's
// error (core.ErrUnavailable, retry later) and ends the server's stream.
func TestPullPagesCancel(t *testing.T) {
	svc := newAuthority(t, nil)
	fill(t, svc, "note", 10, 10)
	h := hook(svc)
	h.beforeSend = func(ctx context.Context, n int) {
		if n == 5 { // still streaming when the client cancels
			<-ctx.Done()
		}
	}
	r := serve(t, h, server.TransportConfig{})
	c := dial(t, r.addr, "", nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	yielded := 0
	err := c.PullPages(ctx, core.PullRequest{Kind: "note", Limit: 1}, func(core.Page) error {
		if yielded++; yielded == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, core.ErrUnavailable) || yielded != 3 {
		t.Errorf("cancelled walk: %v after %d pages; want context.Canceled and ErrUnavailable after 3", err, yielded)
	}
	if err := h.waitEnded(t); !errors.Is(err, context.Canceled) {
		t.Errorf("the server's stream ended with %v, want context.Canceled", err)
	}
}

// TestPullPagesBackpressure: while yield holds a page, the authority reads
// no further than HTTP/2 flow control lets the server send (the client's
// stream window, gRPC's default, 64 KiB to start with: a few of these
// pages): a client that does not read holds the walk back instead of
// having it buffered.
func TestPullPagesBackpressure(t *testing.T) {
	const rows = 400
	svc := newAuthority(t, nil)
	fill(t, svc, "note", rows, 32<<10)
	h := hook(svc)
	r := serve(t, h, server.TransportConfig{})
	c := dial(t, r.addr, "", nil)
	yielded := 0
	held := int64(0)
	err := c.PullPages(t.Context(), core.PullRequest{Kind: "note", Limit: 1}, func(core.Page) error {
		if yielded++; yielded == 1 {
			// Wait until the server stops reading ahead (the count stays
			// still for several looks), then note how far it got.
			still := 0
			for last := int64(-1); still < 5; time.Sleep(20 * time.Millisecond) {
				if n := h.read.Load(); n == last {
					still++
				} else {
					last, still = n, 0
				}
			}
			held = h.read.Load()
		}
		return nil
	})
	if err != nil || yielded != rows {
		t.Fatalf("walk: %d pages, %v; want %d", yielded, err, rows)
	}
	t.Logf("while the client held the first page the authority had read %d pages of %d (about %d KiB)", held, rows, held*32)
	if held > 16 { // transporttest's bound (streamAhead) beyond the page held
		t.Errorf("the authority read %d of %d pages while the client held the first: no backpressure", held, rows)
	}
	h.waitEnded(t)
}

// TestPullPagesTokenExpiry: a token that expires mid-walk ends the stream
// Unauthenticated (server.StreamContext); the client opens the walk again
// after the last page it yielded with a refreshed token, or, when the
// token source has no fresh token, returns core.ErrUnauthorized.
func TestPullPagesTokenExpiry(t *testing.T) {
	var expMs atomic.Int64 // when token "short" expires
	expireSoon := func() { expMs.Store(time.Now().Add(300 * time.Millisecond).UnixMilli()) }
	expireSoon()
	svc := newAuthority(t, &server.Options{Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
		switch exp := expMs.Load(); {
		case tok == "long":
			return core.Principal{ID: "u"}, nil
		case tok == "short" && time.Now().UnixMilli() < exp:
			return core.Principal{ID: "u", Attrs: map[string]string{server.ExpiryAttr: strconv.FormatInt(exp, 10)}}, nil
		}
		return core.Principal{}, core.ErrUnauthorized
	}})
	fill(t, svc, "note", 9, 10)
	h := hook(svc)
	// A stream of an expiring token holds after its first page until its
	// context ends: the expiry falls mid-walk.
	h.beforeSend = func(ctx context.Context, n int) {
		if p, _ := core.PrincipalFrom(ctx); n > 1 && p.Attrs[server.ExpiryAttr] != "" {
			<-ctx.Done()
		}
	}
	r := serve(t, h, server.TransportConfig{})

	var refreshed atomic.Int32
	src := func(_ context.Context, refresh bool) (string, error) {
		if refresh {
			refreshed.Add(1)
			return "long", nil
		}
		return "short", nil
	}
	var n calls
	c := dial(t, r.addr, "", n.options(ogrpc.Options{Token: src}))
	got, err := streamAll(t, c, core.PullRequest{Kind: "note", Limit: 2})
	if err != nil {
		t.Fatalf("walk across the expiry: %v", err)
	}
	if err := h.waitEnded(t); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the expired stream ended with %v, want its deadline", err)
	}
	h.waitEnded(t)
	long := dial(t, r.addr, "long", nil)
	samePages(t, "walk across the expiry", got, pullAll(t, long, core.PullRequest{Kind: "note", Limit: 2}))
	if n.of(pullPagesMethod) != 2 || refreshed.Load() != 1 {
		t.Errorf("%d streams and %d refreshes, want 2 and 1", n.of(pullPagesMethod), refreshed.Load())
	}

	// The raw stream: one page, then Unauthenticated. (The token is
	// refused from now on; a fresh expiring one is made for this part.)
	expireSoon()
	_, raw := rawConn(t, r.addr)
	s, err := raw.PullPages(bearer(t.Context(), "Bearer short"), &syncv1.PullRequest{Kind: "note", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.Recv(); err != nil || len(p.GetRecords()) != 2 {
		t.Fatalf("first page: %v, %v", p, err)
	}
	_, err = s.Recv()
	wantStatus(t, "stream past the expiry", err, codes.Unauthenticated, "offsync: unauthorized: the token expired", "unauthorized")
	h.waitEnded(t)

	// A token source without a fresh token: ErrUnauthorized after the
	// pages before the expiry.
	expireSoon()
	stale := dial(t, r.addr, "short", nil)
	got, err = streamAll(t, stale, core.PullRequest{Kind: "note", Limit: 2})
	if !errors.Is(err, core.ErrUnauthorized) || len(got) != 1 {
		t.Errorf("walk with a token that expires: %d pages, %v; want 1 and ErrUnauthorized", len(got), err)
	}
	h.waitEnded(t)
}

// TestPullPagesRateLimited: opening a stream is one request for the
// caller's rate limit, refused ResourceExhausted with RetryInfo (429), which
// the client returns as core.ErrRateLimited.
func TestPullPagesRateLimited(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	rl, err := server.NewRateLimiter(server.RateLimit{PerSecond: 1, Burst: 1}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	svc := newAuthority(t, &server.Options{Authenticate: server.RateLimited(nil, rl)})
	fill(t, svc, "note", 5, 10)
	r := serve(t, svc, server.TransportConfig{})
	c := dial(t, r.addr, "", nil)
	pages, err := streamAll(t, c, core.PullRequest{Kind: "note", Limit: 2})
	if err != nil || len(pages) != 3 {
		t.Fatalf("first walk: %d pages, %v; want 3 over one admitted stream", len(pages), err)
	}
	pages, err = streamAll(t, c, core.PullRequest{Kind: "note", Limit: 2})
	if !errors.Is(err, core.ErrRateLimited) || len(pages) != 0 {
		t.Errorf("second walk: %d pages, %v; want none and ErrRateLimited", len(pages), err)
	}
	_, raw := rawConn(t, r.addr)
	s, err := raw.PullPages(t.Context(), &syncv1.PullRequest{Kind: "note"})
	if err == nil {
		_, err = s.Recv()
	}
	wantStatus(t, "raw stream over the rate", err, codes.ResourceExhausted, `server: principal "": offsync: rate limited: offsync: unavailable, retry later; retry in 1s`, "rate_limited")
	retry := false
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() == time.Second {
			retry = true
		}
	}
	if !retry {
		t.Errorf("no RetryInfo of 1s in %v", status.Convert(err).Details())
	}
}

// TestPullPagesFallback: a server half whose authority cannot stream does
// not list stream-pull and answers PullPages Unimplemented; the client
// then walks with Pull, page by page, and never opens the stream.
func TestPullPagesFallback(t *testing.T) {
	svc := newAuthority(t, nil)
	fill(t, svc, "note", 11, 10)
	plain := struct{ core.Transport }{svc}
	r := serve(t, plain, server.TransportConfig{})
	_, raw := rawConn(t, r.addr)
	s, err := raw.PullPages(t.Context(), &syncv1.PullRequest{Kind: "note"})
	if err == nil {
		_, err = s.Recv()
	}
	wantStatus(t, "pull pages of a plain authority", err, codes.Unimplemented,
		"this authority does not stream a walk's pages: pull page by page", "not_implemented")

	var n calls
	c := dial(t, r.addr, "", n.options(ogrpc.Options{}))
	got, err := streamAll(t, c, core.PullRequest{Kind: "note", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	samePages(t, "fallback", got, pullAll(t, dial(t, r.addr, "", nil), core.PullRequest{Kind: "note", Limit: 3}))
	if n.of(pullPagesMethod) != 0 || n.of(pullMethod) != 4 {
		t.Errorf("%d PullPages and %d Pull calls, want 0 and 4", n.of(pullPagesMethod), n.of(pullMethod))
	}
}

// TestPullPagesOldServer: a server built before PullPages (its service
// has no such method) answers it Unimplemented, even if it lists the
// capability; the client falls back to Pull and does not try the stream
// again.
func TestPullPagesOldServer(t *testing.T) {
	svc := newAuthority(t, nil)
	fill(t, svc, "note", 5, 10)
	desc := syncv1.Sync_ServiceDesc
	desc.Streams = slices.DeleteFunc(slices.Clone(desc.Streams), func(s grpcgo.StreamDesc) bool { return s.StreamName == "PullPages" })
	gs := grpcgo.NewServer()
	gs.RegisterService(&desc, ogrpc.NewServer(svc, server.TransportConfig{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gs.Serve(ln) }()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})

	var n calls
	c := dial(t, ln.Addr().String(), "", n.options(ogrpc.Options{}))
	for i := range 2 {
		got, err := streamAll(t, c, core.PullRequest{Kind: "note", Limit: 2})
		if err != nil || len(got) != 3 {
			t.Fatalf("walk %d: %d pages, %v; want 3", i, len(got), err)
		}
	}
	if n.of(pullPagesMethod) != 1 || n.of(pullMethod) != 6 {
		t.Errorf("%d PullPages and %d Pull calls, want 1 (answered Unimplemented) and 6", n.of(pullPagesMethod), n.of(pullMethod))
	}
}

// TestPullPagesUnderMessageLimits: a page over the server's message limit
// is streamed with fewer rows and the walk goes on; a page over the
// client's receive limit is asked for with Pull and the stream resumes
// after it; a record that fits in no message is core.ErrTooLarge.
func TestPullPagesUnderMessageLimits(t *testing.T) {
	svc := newAuthority(t, nil)
	fill(t, svc, "big", 20, 4000)
	small := serve(t, svc, server.TransportConfig{Limits: server.Limits{MaxMessage: 32 << 10}})
	var n calls
	c := dial(t, small.addr, "", n.options(ogrpc.Options{}))
	pages, err := streamAll(t, c, core.PullRequest{Kind: "big", Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	samePages(t, "server-cut walk", pages, pullAll(t, dial(t, small.addr, "", nil), core.PullRequest{Kind: "big", Limit: 20}))
	if len(pages) < 3 || n.of(pullPagesMethod) != 1 || n.of(pullMethod) != 0 {
		t.Errorf("server-cut walk: %d pages over %d streams and %d pulls; want several pages over 1 stream",
			len(pages), n.of(pullPagesMethod), n.of(pullMethod))
	}

	roomy := serve(t, svc, server.TransportConfig{})
	var m calls
	lc := dial(t, roomy.addr, "", m.options(ogrpc.Options{MaxMessage: 16 << 10}))
	pages, err = streamAll(t, lc, core.PullRequest{Kind: "big", Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range pages {
		total += len(p.Records)
	}
	if len(pages[0].Records) > 3 {
		t.Errorf("client-cut walk: a first page of %d rows, want at most 3", len(pages[0].Records))
	}
	if total != 20 || m.of(pullMethod) == 0 {
		t.Errorf("client-cut walk: %d rows, %d Pull calls; want 20 rows, pages over the limit asked with Pull", total, m.of(pullMethod))
	}

	fill(t, svc, "huge", 1, 40<<10)
	if pages, err := streamAll(t, c, core.PullRequest{Kind: "huge"}); !errors.Is(err, core.ErrTooLarge) || len(pages) != 0 {
		t.Errorf("walk of a record over the message limit: %d pages, %v; want ErrTooLarge", len(pages), err)
	}
}

// TestPullPagesServerGone: a stream cut by the server (shutdown
// with the stream open) is core.ErrUnavailable, never a walk that ends
// as if complete.
func TestPullPagesServerGone(t *testing.T) {
	svc := newAuthority(t, nil)
	fill(t, svc, "note", 10, 10)
	h := hook(svc)
	entered := make(chan struct{})
	h.beforeSend = func(ctx context.Context, n int) {
		if n == 2 {
			close(entered)
			<-ctx.Done()
		}
	}
	r := serveOn(t, h, "127.0.0.1:0", server.TransportConfig{})
	c := dial(t, r.addr, "", nil)
	errc := make(chan error, 1)
	var yielded atomic.Int32
	first := make(chan struct{})
	go func() {
		errc <- c.PullPages(t.Context(), core.PullRequest{Kind: "note", Limit: 1}, func(core.Page) error {
			if yielded.Add(1) == 1 {
				close(first)
			}
			return nil
		})
	}()
	<-entered
	<-first
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // no grace: cut the stream
	r.ts.Shutdown(ctx)
	<-r.done
	err := <-errc
	if !errors.Is(err, core.ErrUnavailable) || yielded.Load() != 1 {
		t.Errorf("walk cut by the server: %v after %d pages; want ErrUnavailable after 1", err, yielded.Load())
	}
	h.waitEnded(t)
}
