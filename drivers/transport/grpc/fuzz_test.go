package grpc

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/offsync/offsync/core"
	syncv1 "github.com/offsync/offsync/drivers/transport/grpc/proto/offsync/sync/v1"
)

// FuzzRequests feeds arbitrary bytes to the server's request conversion
// (the codec's decoding, then opsOf and pullOf, which reads the request of
// Pull and of PullPages): it never panics, every
// refusal is core.ErrInvalid or core.ErrTooLarge, and what it accepts is
// what the authority may be given (valid ids, object payloads, times in
// range), and survives a round trip through the client's encoding.
// Corpus: testdata/fuzz/FuzzRequests. Run long outside CI:
//
//	nice -n 19 go test -run XXX -fuzz FuzzRequests -fuzztime 5m ./drivers/transport/grpc
func FuzzRequests(f *testing.F) {
	seeds := []proto.Message{
		&syncv1.PushRequest{Ops: []*syncv1.Op{{OpId: "o1", Kind: "todo", Id: "a", Type: syncv1.OpType_OP_TYPE_UPSERT, Payload: []byte(`{"x":1}`)}}},
		&syncv1.PushRequest{Ops: []*syncv1.Op{{OpId: "o2", Kind: "todo", Id: "a", Type: syncv1.OpType_OP_TYPE_DELETE, BaseUpdatedAt: 1796195454264045, Force: true}}},
		&syncv1.PushRequest{Ops: []*syncv1.Op{{OpId: "o3", Kind: "todo", Id: "é", Type: syncv1.OpType_OP_TYPE_UPSERT, Payload: []byte(` {"a":[1,{"b":null}]}`), EditedAt: -1}}},
		&syncv1.PullRequest{Kind: "todo", Limit: 10, After: &syncv1.Cursor{UpdatedAt: 1796195454264045, Id: "a"}},
		&syncv1.PullRequest{Kind: "todo", PageToken: "tok"},
		&syncv1.PullRequest{Kind: "todo", Limit: 1<<31 - 1, After: &syncv1.Cursor{UpdatedAt: -1}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		_, isPush := s.(*syncv1.PushRequest)
		f.Add(isPush, b)
	}
	f.Fuzz(func(t *testing.T, isPush bool, b []byte) {
		if isPush {
			var req syncv1.PushRequest
			if proto.Unmarshal(b, &req) != nil {
				return // the codec answers InvalidArgument
			}
			ops, err := opsOf(req.GetOps(), 100)
			if err != nil {
				if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrTooLarge) {
					t.Fatalf("refusal %v is neither invalid nor too large", err)
				}
				return
			}
			for i := range ops {
				op := &ops[i]
				if core.CheckID(op.ID) != nil || (op.Type == core.OpUpsert && !isObject(op.Payload)) {
					t.Fatalf("accepted a bad op %+v", op)
				}
				if res, ok := checkOp(op); !ok {
					t.Fatalf("the server accepts what the client refuses: %+v: %s", op, res.Reason)
				}
				back, err := opsOf([]*syncv1.Op{opPB(op)}, 1)
				if err != nil || back[0].OpID != op.OpID || !back[0].BaseUpdatedAt.Equal(op.BaseUpdatedAt) ||
					!back[0].EditedAt.Equal(op.EditedAt) || string(back[0].Payload) != string(op.Payload) {
					t.Fatalf("round trip of %+v: %+v, %v", op, back, err)
				}
			}
			return
		}
		var req syncv1.PullRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		pr, err := pullOf(&req)
		if err != nil {
			if !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("refusal %v is not invalid", err)
			}
			return
		}
		if pr.Limit < 0 || pr.Kind == "" || (pr.After.ID != "" && pr.After.UpdatedAt.IsZero()) {
			t.Fatalf("accepted a bad pull %+v", pr)
		}
		// The client's encoding of it (Pull's and PullPages' request) reads
		// back the same, its default page size standing for limit 0.
		in, err := (&Client{pageSize: defaultPageSize}).pullPB(pr)
		if err != nil {
			t.Fatalf("the server accepts the pull %+v that the client refuses: %v", pr, err)
		}
		back, err := pullOf(in)
		if pr.Limit == 0 {
			pr.Limit = defaultPageSize
		}
		pr.Limit = min(pr.Limit, 1<<30) // what a client asks at most
		if err != nil || back.Kind != pr.Kind || back.PageToken != pr.PageToken || back.Limit != pr.Limit ||
			!back.After.UpdatedAt.Equal(pr.After.UpdatedAt) || back.After.ID != pr.After.ID {
			t.Fatalf("round trip of %+v: %+v, %v", pr, back, err)
		}
	})
}
