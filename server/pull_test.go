package server_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

func TestPullKeysetPagingExactAtEqualTimestamps(t *testing.T) {
	ctx := t.Context()
	svc, st := newService(t, nil)
	// Rows sharing one UpdatedAt (as an import could write them): the page
	// boundary falls between rows of equal time, and the ID breaks the tie.
	err := st.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		for i := range 25 {
			rec := core.Record{Kind: "note", ID: fmt.Sprintf("r%02d", i), UpdatedAt: t0, Data: []byte(`{}`)}
			if err := tx.Put(ctx, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	req := core.PullRequest{Kind: "note", Limit: 7}
	pages := 0
	for {
		page, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Records) > 7 {
			t.Fatalf("page of %d rows with limit 7", len(page.Records))
		}
		for _, r := range page.Records {
			ids = append(ids, r.ID)
		}
		if page.NextPageToken == "" {
			if page.Remaining != 0 {
				t.Fatalf("last page says %d remain", page.Remaining)
			}
			break
		}
		req.PageToken = page.NextPageToken
	}
	if pages != 4 || len(ids) != 25 {
		t.Fatalf("%d pages, %d rows; want 4 pages, 25 rows", pages, len(ids))
	}
	for i, id := range ids {
		if want := fmt.Sprintf("r%02d", i); id != want {
			t.Fatalf("row %d is %s, want %s (rows: %v)", i, id, want, ids)
		}
	}
	// Resuming between walks with After gives the same positions.
	page, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: 3, After: core.Cursor{UpdatedAt: t0, ID: "r10"}})
	if err != nil || len(page.Records) != 3 || page.Records[0].ID != "r11" {
		t.Fatalf("resume after r10: %+v, %v", page.Records, err)
	}
}

// An offset token skips a row when an earlier row moves to the end between
// pages; a keyset token does not.
func TestPullTokenIsAKeysetNotAnOffset(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	var first core.Record
	for i := range 10 {
		r := mustApply(t, ctx, svc, upsert(fmt.Sprint("c", i), "note", fmt.Sprint("n", i), `{}`, time.Time{}))
		if i == 0 {
			first = r
		}
	}
	page, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: 3})
	if err != nil || len(page.Records) != 3 {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	mustApply(t, ctx, svc, upsert("move", "note", "n0", `{"moved":true}`, first.UpdatedAt))
	seen := map[string]int{}
	req := core.PullRequest{Kind: "note", Limit: 3, PageToken: page.NextPageToken}
	for req.PageToken != "" {
		page, err = svc.Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			seen[r.ID]++
		}
		req.PageToken = page.NextPageToken
	}
	for i := 3; i < 10; i++ {
		if seen[fmt.Sprint("n", i)] != 1 {
			t.Fatalf("n%d seen %d times after the first page (seen %v)", i, seen[fmt.Sprint("n", i)], seen)
		}
	}
	if seen["n0"] != 1 {
		t.Fatalf("the moved row was seen %d times, want once", seen["n0"])
	}
}

func TestPullBadTokensAreBadCursor(t *testing.T) {
	ctx := t.Context()
	svc, st := newService(t, nil)
	for i := range 5 {
		mustApply(t, ctx, svc, upsert(fmt.Sprint(i), "note", fmt.Sprint("n", i), `{}`, time.Time{}))
		mustApply(t, ctx, svc, upsert(fmt.Sprint("t", i), "task", fmt.Sprint("n", i), `{}`, time.Time{}))
	}
	page, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: 2})
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	tok := page.NextPageToken
	other := newServiceOn(t, st, &server.Options{Tables: []core.Table{core.Documents("note")}})
	forged, err := other.Pull(ctx, core.PullRequest{Kind: "note", Limit: 2})
	if err != nil || forged.NextPageToken == "" {
		t.Fatal(err)
	}
	flipped := []byte(tok)
	flipped[len(flipped)/2] ^= 1
	if flipped[len(flipped)/2] == '-'^1 || flipped[len(flipped)/2] == '_'^1 {
		flipped[len(flipped)/2] = 'A'
	}
	bad := map[string]string{
		"forged by another secret": forged.NextPageToken,
		"truncated":                tok[:len(tok)-3],
		"cut in half":              tok[:len(tok)/2],
		"garbage":                  "not a token!",
		"short base64":             "AAAA",
		"flipped":                  string(flipped),
		"padded":                   tok + "==",
	}
	for name, tk := range bad {
		if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note", PageToken: tk}); !errors.Is(err, core.ErrBadCursor) {
			t.Errorf("%s token: %v, want ErrBadCursor", name, err)
		}
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "task", PageToken: tok}); !errors.Is(err, core.ErrBadCursor) {
		t.Errorf("a note token used for task: %v, want ErrBadCursor", err)
	}
	// Services sharing a TokenSecret accept each other's tokens.
	secret := []byte("shared secret")
	a := newServiceOn(t, st, &server.Options{TokenSecret: secret})
	b := newServiceOn(t, st, &server.Options{TokenSecret: secret})
	pa, err := a.Pull(ctx, core.PullRequest{Kind: "note", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Pull(ctx, core.PullRequest{Kind: "note", Limit: 2, PageToken: pa.NextPageToken})
	if err != nil || len(pb.Records) != 2 || pb.Records[0].ID != "n2" {
		t.Fatalf("shared-secret token: %+v, %v", pb.Records, err)
	}
}

func TestPullLimits(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{DefaultLimit: 3, MaxLimit: 5})
	for i := range 8 {
		mustApply(t, ctx, svc, upsert(fmt.Sprint(i), "note", fmt.Sprint("n", i), `{}`, time.Time{}))
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: -1}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("negative limit: %v, want ErrInvalid", err)
	}
	for _, c := range []struct{ limit, want int }{{0, 3}, {100, 5}, {2, 2}, {8, 5}} {
		page, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: c.limit})
		if err != nil || len(page.Records) != c.want {
			t.Fatalf("limit %d: %d rows (%v), want %d", c.limit, len(page.Records), err, c.want)
		}
		if page.NextPageToken == "" || page.Remaining != int64(8-c.want) {
			t.Fatalf("limit %d: token %q remaining %d, want a token and %d remaining", c.limit, page.NextPageToken, page.Remaining, 8-c.want)
		}
	}
}

// Remaining is counted on the first page of a walk and carried down in the
// page tokens, so a progress bar knows its total from the start.
func TestPullRemainingAcrossAWalk(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	for i := range 10 {
		mustApply(t, ctx, svc, upsert(fmt.Sprint(i), "note", fmt.Sprintf("n%02d", i), `{}`, time.Time{}))
	}
	var got []int64
	req := core.PullRequest{Kind: "note", Limit: 3}
	for {
		page, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Remaining)
		if page.NextPageToken == "" {
			break
		}
		req.PageToken = page.NextPageToken
	}
	if fmt.Sprint(got) != "[7 4 1 0]" {
		t.Fatalf("remaining per page %v, want [7 4 1 0]", got)
	}
}

func TestUnknownKinds(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "nope"}); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("pull: %v", err)
	}
	if _, err := svc.Get(ctx, "nope", "x"); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("get: %v", err)
	}
	if _, err := svc.Subscribe(ctx, []string{"note", "nope"}); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("subscribe: %v", err)
	}
	// A single op of an unknown kind fails the push (the per-op REST form
	// answers it 404 unknown_kind); inside a larger batch it is a permanent
	// rejection and the other ops are answered as usual.
	if _, err := svc.Push(ctx, []core.Op{upsert("1", "nope", "x", `{}`, time.Time{})}); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("push of one op of an unknown kind: %v, want ErrUnknownKind", err)
	}
	res, err := svc.Push(ctx, []core.Op{upsert("1", "nope", "x", `{}`, time.Time{}), upsert("2", "note", "x", `{}`, time.Time{})})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != core.StatusRejected || !res[0].Permanent || !strings.Contains(res[0].Reason, "unknown kind") {
		t.Fatalf("unknown kind in a batch: %+v, want a permanent rejection", res[0])
	}
	wantStatus(t, res[1], core.StatusApplied)

	dyn, _ := newService(t, &server.Options{DynamicKinds: regexp.MustCompile(`^doc_`)})
	mustApply(t, ctx, dyn, upsert("1", "doc_a", "x", `{"a":1}`, time.Time{}))
	if recs := pullAll(t, ctx, dyn, "doc_a", 0); len(recs) != 1 {
		t.Fatalf("dynamic kind feed: %+v", recs)
	}
	if recs := pullAll(t, ctx, dyn, "doc_b", 0); len(recs) != 0 {
		t.Fatalf("fresh dynamic kind feed: %+v", recs)
	}
	for _, k := range []string{"other", "doc_A B"} {
		if _, err := dyn.Pull(ctx, core.PullRequest{Kind: k}); !errors.Is(err, core.ErrUnknownKind) {
			t.Fatalf("dynamic %q: %v, want ErrUnknownKind", k, err)
		}
	}
	if _, err := server.New(ctx, newStore(t), &server.Options{Tables: []core.Table{core.Documents("batch")}}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("reserved kind: %v, want ErrInvalid", err)
	}
}

func TestGetReturnsTombstones(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	v := mustApply(t, ctx, svc, upsert("1", "note", "a", `{"x":1}`, time.Time{}))
	mustApply(t, ctx, svc, del("2", "note", "a", v.UpdatedAt))
	got := getRec(t, ctx, svc, "note", "a")
	if !got.Deleted() || fmt.Sprint(fields(t, got)["x"]) != "1" {
		t.Fatalf("Get = %+v", got)
	}
	if _, err := svc.Get(ctx, "note", "b"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	recs := pullAll(t, ctx, svc, "note", 0)
	if len(recs) != 1 || !recs[0].Deleted() {
		t.Fatalf("the feed must carry the tombstone: %+v", recs)
	}
}
