package grpc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	grpcgo "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/offsync/offsync/core"
	syncv1 "github.com/offsync/offsync/drivers/transport/grpc/proto/offsync/sync/v1"
	"github.com/offsync/offsync/server"
)

// rawConn dials addr with a plain generated stub, so that requests the
// Client would refuse to send reach the server as they are.
func rawConn(t testing.TB, addr string) (*grpcgo.ClientConn, syncv1.SyncClient) {
	t.Helper()
	conn, err := grpcgo.NewClient("passthrough:///"+addr, grpcgo.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, syncv1.NewSyncClient(conn)
}

// bearer returns ctx with the given authorization values.
func bearer(ctx context.Context, values ...string) context.Context {
	for _, v := range values {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
	}
	return ctx
}

// wantStatus checks an RPC error's code, message and ErrorInfo.
func wantStatus(t *testing.T, what string, err error, code codes.Code, msg, reason string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Errorf("%s: error %v, want %v %q", what, err, code, msg)
		return
	}
	if st.Code() != code || st.Message() != msg {
		t.Errorf("%s: %v %q, want %v %q", what, st.Code(), st.Message(), code, msg)
	}
	if reason == "" {
		return
	}
	got := ""
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			got = ei.GetReason()
		}
	}
	if got != reason {
		t.Errorf("%s: ErrorInfo reason %q, want %q", what, got, reason)
	}
}

// rawCodec sends and receives pre-encoded protobuf bytes.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

var _ encoding.CodecV2 = rawCodec{}

// opBytes encodes an Op with a raw id (possibly not UTF-8), wrapped in a
// PushRequest.
func pushBytes(opID, kind, id string, payload string) []byte {
	var op []byte
	op = protowire.AppendTag(op, 1, protowire.BytesType)
	op = protowire.AppendString(op, opID)
	op = protowire.AppendTag(op, 2, protowire.BytesType)
	op = protowire.AppendString(op, kind)
	op = protowire.AppendTag(op, 3, protowire.BytesType)
	op = protowire.AppendString(op, id)
	op = protowire.AppendTag(op, 4, protowire.VarintType)
	op = protowire.AppendVarint(op, uint64(syncv1.OpType_OP_TYPE_UPSERT))
	op = protowire.AppendTag(op, 5, protowire.BytesType)
	op = protowire.AppendString(op, payload)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, op)
}

// authorityWithToken serves kinds as documents and accepts token "good".
func authorityWithToken(t *testing.T) *server.Service {
	return newAuthority(t, &server.Options{
		MaxBatch: 10,
		Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
			if tok != "good" {
				return core.Principal{}, fmt.Errorf("%w: token %q", core.ErrUnauthorized, tok)
			}
			return core.Principal{ID: "u1"}, nil
		},
	})
}

// rowsOf counts the records of kind at the authority.
func rowsOf(t *testing.T, svc *server.Service, kind string) int {
	t.Helper()
	ctx := core.WithPrincipal(context.Background(), core.Principal{ID: "u1"})
	p, err := svc.Pull(ctx, core.PullRequest{Kind: kind, Limit: 1000})
	if err != nil {
		if errors.Is(err, core.ErrUnknownKind) {
			return 0
		}
		t.Fatal(err)
	}
	return len(p.Records)
}

func upsertPB(opID, kind, id, payload string) *syncv1.Op {
	return &syncv1.Op{OpId: opID, Kind: kind, Id: id, Type: syncv1.OpType_OP_TYPE_UPSERT, Payload: []byte(payload)}
}

// TestBadInput: every bad request gets its exact status and message, and
// nothing of it is written.
func TestBadInput(t *testing.T) {
	svc := authorityWithToken(t)
	r := serve(t, svc, server.TransportConfig{Limits: server.Limits{MaxMessage: 64 << 10}})
	conn, raw := rawConn(t, r.addr)
	ctx := bearer(t.Context(), "Bearer good")
	big := `{"s":"` + strings.Repeat("x", 70<<10) + `"}`

	pushCases := []struct {
		name   string
		ops    []*syncv1.Op
		code   codes.Code
		msg    string
		reason string
	}{
		{"empty batch", nil, codes.InvalidArgument,
			"offsync: invalid input: a push needs 1 to 10 ops, got none", "bad_request"},
		{"batch over max_batch", func() []*syncv1.Op {
			var ops []*syncv1.Op
			for i := range 11 {
				ops = append(ops, upsertPB(fmt.Sprint("o", i), "todo", fmt.Sprint("r", i), `{}`))
			}
			return ops
		}(), codes.ResourceExhausted, "offsync: too large: 11 ops in one push, at most 10", "too_large"},
		{"batch over max_message", []*syncv1.Op{upsertPB("o1", "todo", "r1", big)}, codes.ResourceExhausted,
			fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", proto.Size(&syncv1.PushRequest{Ops: []*syncv1.Op{upsertPB("o1", "todo", "r1", big)}}), 64<<10), ""},
		{"data not a JSON object", []*syncv1.Op{upsertPB("o1", "todo", "r1", `[1,2]`)}, codes.InvalidArgument,
			"offsync: invalid input: ops[0].payload: data must be a JSON object", "bad_request"},
		{"data not JSON", []*syncv1.Op{upsertPB("o1", "todo", "r1", `{"a":`)}, codes.InvalidArgument,
			"offsync: invalid input: ops[0].payload: data must be a JSON object", "bad_request"},
		{"base time out of range", []*syncv1.Op{{OpId: "o1", Kind: "todo", Id: "r1", Type: syncv1.OpType_OP_TYPE_DELETE, BaseUpdatedAt: 253402300800000000}},
			codes.InvalidArgument, "offsync: invalid input: ops[0].base_updated_at 253402300800000000 µs is outside the years 1 to 9999", "bad_request"},
		{"edited time out of range", []*syncv1.Op{{OpId: "o1", Kind: "todo", Id: "r1", Type: syncv1.OpType_OP_TYPE_UPSERT, Payload: []byte(`{}`), EditedAt: -62135596800000001}},
			codes.InvalidArgument, "offsync: invalid input: ops[0].edited_at -62135596800000001 µs is outside the years 1 to 9999", "bad_request"},
		{"no op type", []*syncv1.Op{{OpId: "o1", Kind: "todo", Id: "r1"}},
			codes.InvalidArgument, "offsync: invalid input: ops[0].type must be OP_TYPE_UPSERT or OP_TYPE_DELETE, got OP_TYPE_UNSPECIFIED", "bad_request"},
		{"empty id", []*syncv1.Op{upsertPB("o1", "todo", "", `{}`)},
			codes.InvalidArgument, "ops[0].id: offsync: invalid input: empty record id", "bad_request"},
		{"NUL in id", []*syncv1.Op{upsertPB("o1", "todo", "a\x00b", `{}`)},
			codes.InvalidArgument, "ops[0].id: offsync: invalid input: a record id may not contain NUL", "bad_request"},
		{"bad op id", []*syncv1.Op{upsertPB("o 1", "todo", "r1", `{}`)},
			codes.InvalidArgument, "ops[0].op_id: offsync: invalid input: an op id must be printable ASCII without spaces", "bad_request"},
		{"op id twice", []*syncv1.Op{upsertPB("o1", "todo", "r1", `{}`), upsertPB("o1", "todo", "r2", `{}`)},
			codes.InvalidArgument, `offsync: invalid input: ops[1].op_id "o1" appears twice`, "bad_request"},
		{"a delete with a payload", []*syncv1.Op{{OpId: "o1", Kind: "todo", Id: "r1", Type: syncv1.OpType_OP_TYPE_DELETE, Payload: []byte(`{}`)}},
			codes.InvalidArgument, "offsync: invalid input: ops[0]: a delete carries no payload", "bad_request"},
	}
	for _, tc := range pushCases {
		_, err := raw.Push(ctx, &syncv1.PushRequest{Ops: tc.ops})
		wantStatus(t, "push: "+tc.name, err, tc.code, tc.msg, tc.reason)
	}

	// Invalid UTF-8 cannot even be marshalled by a Go client: send bytes.
	var out []byte
	in := pushBytes("o1", "todo", "r\xff1", `{}`)
	err := conn.Invoke(ctx, syncv1.Sync_Push_FullMethodName, &in, &out, grpcgo.ForceCodecV2(rawCodec{}))
	wantStatus(t, "push: invalid UTF-8 in an id", err, codes.InvalidArgument,
		"offsync: invalid input: the request message cannot be decoded: string field contains invalid UTF-8", "bad_request")
	in = []byte{0x0a, 0xff} // a truncated field
	err = conn.Invoke(ctx, syncv1.Sync_Push_FullMethodName, &in, &out, grpcgo.ForceCodecV2(rawCodec{}))
	wantStatus(t, "push: malformed protobuf", err, codes.InvalidArgument,
		"offsync: invalid input: the request message cannot be decoded: proto: cannot parse invalid wire-format data", "bad_request")

	// An unknown kind in a push is the op's own permanent rejection.
	resp, err := raw.Push(ctx, &syncv1.PushRequest{Ops: []*syncv1.Op{upsertPB("o1", "Nope", "r1", `{}`)}})
	if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetStatus() != 422 || resp.GetResults()[0].GetError() != "rejected" {
		t.Errorf("push of an unknown kind: %v, %v; want one 422 rejected result", resp, err)
	}

	pullCases := []struct {
		name   string
		req    *syncv1.PullRequest
		code   codes.Code
		msg    string
		reason string
	}{
		{"unknown kind", &syncv1.PullRequest{Kind: "Nope"}, codes.NotFound, `server: offsync: unknown kind: "Nope"`, "unknown_kind"},
		{"empty kind", &syncv1.PullRequest{}, codes.InvalidArgument, "kind: offsync: invalid input: empty kind", "bad_request"},
		{"forged page token", &syncv1.PullRequest{Kind: "todo", PageToken: "forged"}, codes.InvalidArgument, "", "bad_cursor"},
		{"negative limit", &syncv1.PullRequest{Kind: "todo", Limit: -1}, codes.InvalidArgument,
			"offsync: invalid input: limit must not be negative, got -1", "bad_request"},
		{"cursor time out of range", &syncv1.PullRequest{Kind: "todo", After: &syncv1.Cursor{UpdatedAt: 1 << 62}}, codes.InvalidArgument,
			"offsync: invalid input: after.updated_at 4611686018427387904 µs is outside the years 1 to 9999", "bad_request"},
		{"cursor id without a time", &syncv1.PullRequest{Kind: "todo", After: &syncv1.Cursor{Id: "x"}}, codes.InvalidArgument,
			"offsync: invalid input: after.id needs after.updated_at", "bad_request"},
	}
	for _, tc := range pullCases {
		_, err := raw.Pull(ctx, tc.req)
		if tc.msg == "" { // the authority's own words: check the code and reason
			st := status.Convert(err)
			tc.msg = st.Message()
			if !strings.Contains(tc.msg, "bad cursor") {
				t.Errorf("pull: %s: message %q does not say bad cursor", tc.name, tc.msg)
			}
		}
		wantStatus(t, "pull: "+tc.name, err, tc.code, tc.msg, tc.reason)
	}
	_, err = raw.Get(ctx, &syncv1.GetRequest{Kind: "todo", Id: "missing"})
	wantStatus(t, "get: missing", err, codes.NotFound, "server: todo/missing: offsync: not found", "not_found")

	authCases := []struct {
		name   string
		values []string
		msg    string
	}{
		{"no token", nil, "offsync: unauthorized: the token was refused"},
		{"bad token", []string{"Bearer bad"}, "offsync: unauthorized: the token was refused"},
		{"not a bearer", []string{"Basic Z29vZA=="}, "offsync: unauthorized: authorization must be `Bearer <token>`"},
		{"two tokens", []string{"Bearer good", "Bearer good"}, "offsync: unauthorized: more than one authorization value"},
	}
	for _, tc := range authCases {
		actx := bearer(t.Context(), tc.values...)
		_, err := raw.Push(actx, &syncv1.PushRequest{Ops: []*syncv1.Op{upsertPB("auth-"+tc.name, "todo", "r9", `{}`)}})
		wantStatus(t, "push: "+tc.name, err, codes.Unauthenticated, tc.msg, "unauthorized")
		_, err = raw.Pull(actx, &syncv1.PullRequest{Kind: "todo"})
		wantStatus(t, "pull: "+tc.name, err, codes.Unauthenticated, tc.msg, "unauthorized")
		s, err := raw.Subscribe(actx, &syncv1.SubscribeRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		wantStatus(t, "subscribe: "+tc.name, err, codes.Unauthenticated, tc.msg, "unauthorized")
	}
	// Capabilities and health need no token.
	if caps, err := raw.Capabilities(t.Context(), &syncv1.CapabilitiesRequest{}); err != nil || caps.GetMaxBatch() != 10 || caps.GetMaxMessage() != 64<<10 {
		t.Errorf("capabilities without a token: %v, %v", caps, err)
	}

	for _, kind := range []string{"todo", "nope"} {
		if n := rowsOf(t, svc, kind); n != 0 {
			t.Errorf("%d rows of %s written by bad requests", n, kind)
		}
	}
}

// TestCancelMidStream: a client that cancels its Subscribe stream ends it
// on both sides (goleak checks the server's goroutines at exit); the
// Client's channel closes.
func TestCancelMidStream(t *testing.T) {
	svc := newAuthority(t, nil)
	r := serve(t, svc, server.TransportConfig{})
	_, raw := rawConn(t, r.addr)
	ctx, cancel := context.WithCancel(t.Context())
	s, err := raw.Subscribe(ctx, &syncv1.SubscribeRequest{Kinds: []string{"todo"}})
	if err != nil {
		t.Fatal(err)
	}
	if md, err := s.Header(); err != nil || len(md.Get("offsync-subscribed")) != 1 {
		t.Fatalf("header %v, %v", md, err)
	}
	cancel()
	_, err = s.Recv()
	wantStatus(t, "recv after cancel", err, codes.Canceled, "context canceled", "")

	c := dial(t, r.addr, "", nil)
	cctx, ccancel := context.WithCancel(t.Context())
	ch, err := c.Subscribe(cctx, []string{"todo"})
	if err != nil {
		t.Fatal(err)
	}
	ccancel()
	for range ch {
	}
}
