package server_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// deepPayload nests depth levels: the payload object and depth-1 arrays.
func deepPayload(depth int) string {
	return `{"x":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

// Every op is held to the limits by the authority itself, whatever the
// transport checked: each bad op is refused for good, nothing of it is
// written, and the good ops of the batch go on.
func TestLimitsRefuseBadOps(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{MaxRecordBytes: 2000})
	big := `{"x":"` + strings.Repeat("a", 2000) + `"}`
	bad := []core.Op{
		upsert("long-id", "note", strings.Repeat("i", core.MaxIDBytes+1), `{}`, time.Time{}),
		upsert("nul-id", "note", "a\x00b", `{}`, time.Time{}),
		upsert("utf8-id", "note", "a\xffb", `{}`, time.Time{}),
		del("del-long-id", "note", strings.Repeat("j", core.MaxIDBytes+1), time.Time{}),
		upsert(strings.Repeat("o", core.MaxIDBytes+1), "note", "long-op-id", `{}`, time.Time{}),
		upsert("deep", "note", "deep", deepPayload(core.DefaultMaxDepth+1), time.Time{}),
		upsert("very-deep", "note", "very-deep", deepPayload(1100), time.Time{}),
		upsert("dup", "note", "dup", `{"a":{"k":1,"k":2}}`, time.Time{}),
		upsert("nul-data", "note", "nul-data", `{"a":"x\u0000"}`, time.Time{}),
		upsert("big", "note", "big", big, time.Time{}),
		upsert("long-kind", strings.Repeat("k", core.MaxKindBytes+1), "x", `{}`, time.Time{}),
	}
	good := []core.Op{
		upsert("id-at-limit", "note", strings.Repeat("i", core.MaxIDBytes), `{}`, time.Time{}),
		upsert("depth-at-limit", "note", "depth-at-limit", deepPayload(core.DefaultMaxDepth), time.Time{}),
		upsert("same-key-two-objects", "note", "two", `{"a":{"k":1},"b":{"k":2}}`, time.Time{}),
	}
	res := push(t, ctx, svc, append(slices.Clone(bad), good...)...)
	for i, op := range bad {
		if r := res[i]; r.Status != core.StatusRejected || !r.Permanent {
			t.Errorf("op %.20s: %v (permanent %v, %q), want a permanent rejection", op.OpID, r.Status, r.Permanent, r.Reason)
		}
	}
	for i := range good {
		wantStatus(t, res[len(bad)+i], core.StatusApplied)
	}
	recs := pullAll(t, ctx, svc, "note", 0)
	if len(recs) != len(good) {
		t.Fatalf("the feed holds %d records, want the %d good ones", len(recs), len(good))
	}
	// A lone op of a kind name beyond the limits fails the push as an
	// unknown kind does, so a per-op transport can answer 400.
	if _, err := svc.Push(ctx, []core.Op{bad[len(bad)-1]}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("lone op of a %d-byte kind: %v, want ErrInvalid", core.MaxKindBytes+1, err)
	}
	// The depth limit is the option's.
	deeper, _ := newService(t, &server.Options{MaxDepth: 100})
	wantStatus(t, push1(t, ctx, deeper, upsert("d", "note", "d", deepPayload(100), time.Time{})), core.StatusApplied)
	wantStatus(t, push1(t, ctx, deeper, upsert("e", "note", "e", deepPayload(101), time.Time{})), core.StatusRejected)
}

// Reads refuse what no record can be: ids and kinds beyond the limits are
// ErrInvalid (a 400), never a store error.
func TestLimitsOnReads(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{DynamicKinds: regexp.MustCompile(`.`)})
	for _, id := range []string{strings.Repeat("i", 400<<10), "a\x00", "\xff"} {
		if _, err := svc.Get(ctx, "note", id); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("get id %.10q: %v, want ErrInvalid", id, err)
		}
		_, err := svc.Pull(ctx, core.PullRequest{Kind: "note", After: core.Cursor{UpdatedAt: t0, ID: id}})
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("pull after id %.10q: %v, want ErrInvalid", id, err)
		}
	}
	for _, kind := range []string{strings.Repeat("k", core.MaxKindBytes+1), "no\x00te", "\xff"} {
		if _, err := svc.Pull(ctx, core.PullRequest{Kind: kind}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("pull kind %.10q: %v, want ErrInvalid", kind, err)
		}
		if _, err := svc.Get(ctx, kind, "x"); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("get kind %.10q: %v, want ErrInvalid", kind, err)
		}
		if _, err := svc.Subscribe(ctx, []string{kind}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("subscribe kind %.10q: %v, want ErrInvalid", kind, err)
		}
	}
}

// A read of a dynamic kind never registers it: a pull is an empty page, a
// fetch is not found, a subscription waits for the first write; the first
// write registers it.
func TestDynamicKindsNotRegisteredOnRead(t *testing.T) {
	ctx := t.Context()
	svc, st := newService(t, &server.Options{DynamicKinds: regexp.MustCompile(`^doc_`)})
	registered := func(kind string) bool {
		return slices.ContainsFunc(st.Kinds(), func(tb core.Table) bool { return tb.Kind() == kind })
	}
	page, err := svc.Pull(ctx, core.PullRequest{Kind: "doc_x"})
	if err != nil || len(page.Records) != 0 || page.NextPageToken != "" || page.Remaining != 0 {
		t.Fatalf("pull of a dynamic kind without rows: %+v, %v; want an empty last page", page, err)
	}
	if _, err := svc.Get(ctx, "doc_x", "a"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("get: %v, want ErrNotFound", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := svc.Subscribe(sctx, []string{"doc_x"})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	for i := range 50 {
		if _, err := svc.Pull(ctx, core.PullRequest{Kind: fmt.Sprint("doc_", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if registered("doc_x") || registered("doc_0") {
		t.Fatalf("reads registered kinds: %d kinds on the store", len(st.Kinds()))
	}
	rec := mustApply(t, ctx, svc, upsert("1", "doc_x", "a", `{}`, time.Time{}))
	if !registered("doc_x") {
		t.Fatalf("the first write did not register doc_x")
	}
	if n := <-ch; n.Kind != "doc_x" || n.ID != "a" || !n.UpdatedAt.Equal(rec.UpdatedAt) {
		t.Fatalf("notice %+v, want doc_x up to a", n)
	}
}

// At most MaxDynamicKinds kinds are created; kinds that already have rows
// are served whatever the cap (a restart does not lose them).
func TestDynamicKindsCap(t *testing.T) {
	ctx := t.Context()
	st := newStore(t)
	dyn := regexp.MustCompile(`^doc_`)
	svc := newServiceOn(t, st, &server.Options{DynamicKinds: dyn, MaxDynamicKinds: 2})
	mustApply(t, ctx, svc, upsert("1", "doc_a", "x", `{}`, time.Time{}))
	mustApply(t, ctx, svc, upsert("2", "doc_b", "x", `{}`, time.Time{}))
	if _, err := svc.Push(ctx, []core.Op{upsert("3", "doc_c", "x", `{}`, time.Time{})}); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("a third kind: %v, want ErrUnknownKind", err)
	}
	res := push(t, ctx, svc, upsert("4", "doc_c", "x", `{}`, time.Time{}), upsert("5", "doc_a", "y", `{}`, time.Time{}))
	if res[0].Status != core.StatusRejected || !res[0].Permanent {
		t.Fatalf("a third kind in a batch: %+v, want a permanent rejection", res[0])
	}
	wantStatus(t, res[1], core.StatusApplied)
	svc.Close()

	again := newServiceOn(t, st, &server.Options{DynamicKinds: dyn, MaxDynamicKinds: 1})
	if recs := pullAll(t, ctx, again, "doc_a", 0); len(recs) != 2 {
		t.Fatalf("after a restart doc_a has %d records, want 2", len(recs))
	}
	if recs := pullAll(t, ctx, again, "doc_b", 0); len(recs) != 1 {
		t.Fatalf("after a restart doc_b has %d records, want 1 (kinds with rows are served past the cap)", len(recs))
	}
	mustApply(t, ctx, again, upsert("6", "doc_b", "y", `{}`, time.Time{}))
	if _, err := again.Push(ctx, []core.Op{upsert("7", "doc_d", "x", `{}`, time.Time{})}); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("a new kind past the cap: %v, want ErrUnknownKind", err)
	}
}

// A page ends at the byte budget as well as at the row limit; the walk
// goes on from there and sees every row once, and a record larger than the
// budget still gets a page of its own.
func TestPageByteBudget(t *testing.T) {
	ctx := t.Context()
	const budget = 2000
	svc, _ := newService(t, &server.Options{MaxPageBytes: budget})
	unbounded, _ := newService(t, nil)
	payload := `{"x":"` + strings.Repeat("a", 600) + `"}`
	for i := range 10 {
		for _, s := range []*server.Service{svc, unbounded} {
			mustApply(t, ctx, s, upsert(fmt.Sprint(i), "note", fmt.Sprintf("n%02d", i), payload, time.Time{}))
		}
	}
	huge := `{"x":"` + strings.Repeat("b", 3*budget) + `"}`
	mustApply(t, ctx, svc, upsert("huge", "note", "huge", huge, time.Time{}))
	mustApply(t, ctx, unbounded, upsert("huge", "note", "huge", huge, time.Time{}))

	// The control: without a budget of its own, one page holds everything.
	if p, err := unbounded.Pull(ctx, core.PullRequest{Kind: "note", Limit: 100}); err != nil || len(p.Records) != 11 {
		t.Fatalf("default budget: %d records, %v; want all 11 on one page", len(p.Records), err)
	}
	var ids []string
	pages := 0
	req := core.PullRequest{Kind: "note", Limit: 100}
	for {
		p, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		size := 0
		for _, r := range p.Records {
			ids = append(ids, r.ID)
			size += len(r.ID) + len(r.Data)
		}
		if len(p.Records) == 0 || (len(p.Records) > 1 && size > budget) {
			t.Fatalf("page %d: %d records of %d bytes, budget %d", pages, len(p.Records), size, budget)
		}
		if p.NextPageToken == "" {
			break
		}
		req.PageToken = p.NextPageToken
	}
	want := []string{"n00", "n01", "n02", "n03", "n04", "n05", "n06", "n07", "n08", "n09", "huge"}
	if !slices.Equal(ids, want) {
		t.Fatalf("walk saw %v, want %v", ids, want)
	}
	if pages < 6 {
		t.Fatalf("%d pages, want at least 6 (two 600-byte records per 2000-byte page)", pages)
	}
}

// The remaining count is bounded: one pull counts at most 10 pages' worth
// of rows, so a long walk starts with an unknown count (-1) and learns the
// exact one on the way. A count a page reports is always right.
func TestRemainingCountIsBounded(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{MaxBatch: 1000})
	const rows = 100
	ops := make([]core.Op, rows)
	for i := range ops {
		ops[i] = upsert(fmt.Sprint(i), "note", fmt.Sprintf("n%03d", i), `{}`, time.Time{})
	}
	push(t, ctx, svc, ops...)
	req := core.PullRequest{Kind: "note", Limit: 2}
	seen, exact := 0, 0
	var got []int64
	for {
		p, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(p.Records)
		got = append(got, p.Remaining)
		if p.Remaining >= 0 {
			exact++
			if p.Remaining != int64(rows-seen) {
				t.Fatalf("after %d rows the page says %d remain, want %d", seen, p.Remaining, rows-seen)
			}
		}
		if p.NextPageToken == "" {
			break
		}
		req.PageToken = p.NextPageToken
	}
	if got[0] != -1 {
		t.Errorf("the first page of a 100-row walk by 2 says %d remain, want -1 (more than 10 pages' worth is not counted)", got[0])
	}
	if exact < 10 {
		t.Errorf("only %d pages knew what remained: %v", exact, got)
	}
}

// Notices obey the subscriber's scope: a filtered subscriber learns only
// that the kind changed (never an id or version it may not see), a
// subscriber that sees nothing of a kind hears nothing of it, and an
// unfiltered one gets the notice as it is.
func TestNoticesObeyScope(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{Scope: tenantScope,
		Tables: []core.Table{core.Documents("note"), core.Documents("task"), core.Documents("misc")}})
	alice := as(ctx, "alice", "t1")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bobAll, err := svc.Subscribe(core.WithPrincipal(sctx, core.Principal{ID: "bob", Attrs: map[string]string{"tenant": "t2"}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	bobNotes, err := svc.Subscribe(core.WithPrincipal(sctx, core.Principal{ID: "bob", Attrs: map[string]string{"tenant": "t2"}}), []string{"note", "task"})
	if err != nil {
		t.Fatal(err)
	}
	nobodyAll, err := svc.Subscribe(core.WithPrincipal(sctx, core.Principal{ID: "nobody", Attrs: map[string]string{}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := mustApply(t, alice, svc, upsert("1", "note", "secret", `{"title":"alice only"}`, time.Time{}))
	task := mustApply(t, alice, svc, upsert("2", "task", "t", `{}`, time.Time{}))
	for name, ch := range map[string]<-chan core.Notice{"all kinds": bobAll, "named kinds": bobNotes} {
		n := <-ch
		if n.Kind != "note" || n.ID != "" || !n.UpdatedAt.IsZero() {
			t.Errorf("bob (%s) was told %+v of alice's note, want the kind alone", name, n)
		}
		if n.ID == "secret" || n.UpdatedAt.Equal(secret.UpdatedAt) {
			t.Errorf("bob (%s) learned alice's record: %+v", name, n)
		}
		if n := <-ch; n.Kind != "task" || n.ID != "t" || !n.UpdatedAt.Equal(task.UpdatedAt) {
			t.Errorf("bob (%s) got %+v for the unscoped task, want it whole", name, n)
		}
	}
	mustApply(t, alice, svc, upsert("3", "misc", "m", `{}`, time.Time{}))
	if n := <-nobodyAll; n.Kind != "misc" {
		t.Errorf("a principal who may read neither note nor task heard %+v, want the misc notice first", n)
	}
}

// feedCountStore counts the feed counts its read transactions make.
type feedCountStore struct {
	core.Store
	counts *int
}

func (s feedCountStore) View(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	return s.Store.View(ctx, func(ctx context.Context, tx core.Tx) error {
		return fn(ctx, feedCountTx{tx, s.counts})
	})
}

type feedCountTx struct {
	core.Tx
	counts *int
}

func (t feedCountTx) CountChanges(ctx context.Context, q core.ChangesQuery) (int64, error) {
	*t.counts++
	return t.Tx.(interface {
		CountChanges(context.Context, core.ChangesQuery) (int64, error)
	}).CountChanges(ctx, q)
}

// A walk counts what remains once per 10 pages at most: a page whose token
// carries an exact count or a lower bound not used up counts nothing.
func TestRemainingCountedOncePerTenPages(t *testing.T) {
	ctx := t.Context()
	counts := 0
	svc := newServiceOn(t, feedCountStore{newStore(t), &counts}, &server.Options{MaxBatch: 1000})
	ops := make([]core.Op, 100)
	for i := range ops {
		ops[i] = upsert(fmt.Sprint(i), "note", fmt.Sprintf("n%03d", i), `{}`, time.Time{})
	}
	push(t, ctx, svc, ops...)
	counts = 0
	pages := 0
	req := core.PullRequest{Kind: "note", Limit: 2}
	for {
		p, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if p.NextPageToken == "" {
			break
		}
		req.PageToken = p.NextPageToken
	}
	if counts == 0 || counts > pages/10+1 {
		t.Fatalf("a walk of %d pages counted %d times, want 1 to %d", pages, counts, pages/10+1)
	}
}
