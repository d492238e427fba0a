package transporttest

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

// This file holds the scenarios of the authority's input limits, its page
// byte budget and the scope of its notices: the limits live in server and
// core, and every transport must carry them to the client as they are (a
// refused op stays refused, a cut page is followed by the next one, a
// notice names nothing the subscriber may not read).

// refused fails unless the authority refused op for good: a permanent
// rejection, or a push that fails as a whole as invalid or too large.
func refused(t testing.TB, c core.Transport, op core.Op) {
	t.Helper()
	for tries := 0; ; tries++ {
		res, err := c.Push(t.Context(), []core.Op{op})
		switch {
		case err != nil && core.Retryable(err) && tries < 20:
			continue
		case err != nil:
			if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrTooLarge) && !errors.Is(err, core.ErrRejected) {
				t.Errorf("op %.40q: push failed with %v, want a permanent refusal (a rejection, ErrInvalid or ErrTooLarge)", op.ID, err)
			}
			return
		case len(res) != 1:
			t.Fatalf("push of 1 op answered %d results", len(res))
		case res[0].Status == core.StatusRetry && tries < 20:
			continue
		case res[0].Status != core.StatusRejected || !res[0].Permanent:
			t.Errorf("op %.40q answered %s (permanent %v, %q), want a permanent rejection", op.ID, res[0].Status, res[0].Permanent, res[0].Reason)
		}
		return
	}
}

// noRecord fails when the authority stores a note with id.
func (w *world) noRecord(t testing.TB, id string) {
	t.Helper()
	for _, r := range listStore(t, w.store, NoteKind) {
		if r.ID == id {
			t.Errorf("the authority stored the refused record %.40q", id)
		}
	}
}

// TestLimitsIDs: an id over core.MaxIDBytes or holding NUL is refused for
// good (never a retry, never stored), a read with one is ErrInvalid, and so
// is a kind over core.MaxKindBytes; an id at the limit is fine.
func TestLimitsIDs(t *testing.T, h Harness) {
	w := newWorld(t, h, modeClean, nil)
	c := w.client("")
	long := strings.Repeat("i", core.MaxIDBytes+1)
	for i, id := range []string{long, "nul\x00id"} {
		refused(t, c, core.Op{OpID: fmt.Sprint("lim-id-", i), Kind: NoteKind, ID: id, Type: core.OpUpsert,
			Payload: []byte(fmt.Sprintf(`{"w":"lim-id-%d"}`, i))})
		refused(t, c, core.Op{OpID: fmt.Sprint("lim-del-", i), Kind: NoteKind, ID: id, Type: core.OpDelete})
		w.noRecord(t, id)
	}
	atLimit := strings.Repeat("j", core.MaxIDBytes)
	res := push(t, c, []core.Op{{OpID: "lim-id-ok", Kind: NoteKind, ID: atLimit, Type: core.OpUpsert, Payload: []byte(`{"w":"lim-id-ok"}`)}})
	if res[0].Status != core.StatusApplied {
		t.Fatalf("an id of %d bytes answered %s (%s), want applied", core.MaxIDBytes, res[0].Status, res[0].Reason)
	}
	if _, err := pullRetry(t, c, core.PullRequest{Kind: NoteKind, After: core.Cursor{UpdatedAt: t0, ID: long}}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("pull after an id of %d bytes: %v, want ErrInvalid", len(long), err)
	}
	p, err := pullRetry(t, c, core.PullRequest{Kind: NoteKind, After: core.Cursor{UpdatedAt: t0.Add(-time.Hour), ID: atLimit}})
	if err != nil {
		t.Errorf("pull after an id at the limit: %v", err)
	} else if len(p.Records) == 0 {
		t.Errorf("pull after an id at the limit is empty, want the record written since")
	}
	longKind := strings.Repeat("k", core.MaxKindBytes+1)
	if _, err := pullRetry(t, c, core.PullRequest{Kind: longKind}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("pull of a %d-byte kind: %v, want ErrInvalid", len(longKind), err)
	}
	if g, ok := c.(core.Getter); ok {
		if _, err := getRetry(t, g, NoteKind, long); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("get of an id of %d bytes: %v, want ErrInvalid", len(long), err)
		}
		if rec, err := getRetry(t, g, NoteKind, atLimit); err != nil || rec.ID != atLimit {
			t.Errorf("get of an id at the limit: %v", err)
		}
	}
}

// TestLimitsPayload: a payload nested deeper than the authority's limit, or
// naming a key twice in a nested object, is refused for good and stored
// nowhere; a scoped feed goes on serving every principal.
func TestLimitsPayload(t *testing.T, h Harness) {
	w := newWorld(t, h, modeClean, scoped)
	alice, bob := w.client("alice"), w.client("bob")
	deep := `{"w":"lim-deep","owner":"alice","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`
	refused(t, alice, core.Op{OpID: "lim-deep", Kind: NoteKind, ID: "deep", Type: core.OpUpsert, Payload: []byte(deep)})
	w.noRecord(t, "deep")
	refused(t, alice, core.Op{OpID: "lim-dup", Kind: NoteKind, ID: "dup", Type: core.OpUpsert,
		Payload: []byte(`{"w":"lim-dup","x":{"k":1,"k":2}}`)})
	w.noRecord(t, "dup")
	ok := `{"w":"lim-ok","x":` + strings.Repeat("[", core.DefaultMaxDepth-1) + strings.Repeat("]", core.DefaultMaxDepth-1) + `}`
	res := push(t, alice, []core.Op{{OpID: "lim-ok", Kind: NoteKind, ID: "ok", Type: core.OpUpsert, Payload: []byte(ok)}})
	if res[0].Status != core.StatusApplied {
		t.Fatalf("a payload %d levels deep answered %s (%s), want applied", core.DefaultMaxDepth, res[0].Status, res[0].Reason)
	}
	push(t, bob, []core.Op{{OpID: "lim-bob", Kind: NoteKind, ID: "bobs", Type: core.OpUpsert, Payload: []byte(`{"w":"lim-bob"}`)}})
	for name, c := range map[string]core.Transport{"alice": alice, "bob": bob} {
		n := 0
		walk(t, c, core.PullRequest{Kind: NoteKind}, func(core.Record) { n++ })
		if n != 1 {
			t.Errorf("%s's scoped pull has %d records, want 1", name, n)
		}
	}
}

// pageBudget is the byte budget of TestLimitsPageBytes.
const pageBudget = 4096

// TestLimitsPageBytes: a page ends at the authority's byte budget before
// its row limit, and the walk goes on from there to every row, once each.
func TestLimitsPageBytes(t *testing.T, h Harness) {
	w := newWorld(t, h, modeClean, func(o *server.Options) { o.MaxPageBytes = pageBudget })
	c := w.client("")
	var ops []core.Op
	for i := range 12 {
		ops = append(ops, core.Op{OpID: fmt.Sprint("lim-page-", i), Kind: NoteKind, ID: fmt.Sprintf("p%02d", i), Type: core.OpUpsert,
			Payload: []byte(fmt.Sprintf(`{"w":"lim-page-%d","text":%q}`, i, strings.Repeat("x", 1000)))})
	}
	push(t, c, ops)
	seen := map[string]int{}
	pages := 0
	req := core.PullRequest{Kind: NoteKind, Limit: 100}
	for {
		p, err := pullRetry(t, c, req)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		pages++
		size := 0
		for _, r := range p.Records {
			seen[r.ID]++
			size += len(r.ID) + len(r.Data)
		}
		if len(p.Records) > 1 && size > pageBudget {
			t.Fatalf("page %d holds %d records of %d bytes, over the budget of %d", pages, len(p.Records), size, pageBudget)
		}
		if p.NextPageToken == "" {
			break
		}
		if pages > 100 {
			t.Fatal("the walk does not end")
		}
		req.PageToken = p.NextPageToken
	}
	if len(seen) != 12 {
		t.Errorf("the walk saw %d of the 12 records", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("record %s seen %d times", id, n)
		}
	}
	if pages < 3 {
		t.Errorf("12 records of 1 KB came in %d pages of a %d-byte budget, want at least 3", pages, pageBudget)
	}
}

// TestLimitsDynamicKindsOnRead: a pull of a dynamic kind that has no rows is
// an empty last page and a fetch is ErrNotFound, without creating the kind.
func TestLimitsDynamicKindsOnRead(t *testing.T, h Harness) {
	w := newWorld(t, h, modeClean, func(o *server.Options) { o.DynamicKinds = regexp.MustCompile(`^tt_dyn_`) })
	c := w.client("")
	p, err := pullRetry(t, c, core.PullRequest{Kind: "tt_dyn_x"})
	if err != nil || len(p.Records) != 0 || p.NextPageToken != "" {
		t.Fatalf("pull of a dynamic kind without rows: %d records, token %q, %v; want an empty last page", len(p.Records), p.NextPageToken, err)
	}
	if g, ok := c.(core.Getter); ok {
		if _, err := getRetry(t, g, "tt_dyn_x", "a"); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("get in a dynamic kind without rows: %v, want ErrNotFound", err)
		}
	}
	if k, ok := w.store.(interface{ Kinds() []core.Table }); ok {
		for _, tb := range k.Kinds() {
			if tb.Kind() == "tt_dyn_x" {
				t.Errorf("a read registered the dynamic kind tt_dyn_x on the store")
			}
		}
	}
	res := push(t, c, []core.Op{{OpID: "lim-dyn", Kind: "tt_dyn_x", ID: "a", Type: core.OpUpsert, Payload: []byte(`{"w":"lim-dyn"}`)}})
	if res[0].Status != core.StatusApplied {
		t.Fatalf("the first write of a dynamic kind answered %s (%s)", res[0].Status, res[0].Reason)
	}
	if p, err := pullRetry(t, c, core.PullRequest{Kind: "tt_dyn_x"}); err != nil || len(p.Records) != 1 {
		t.Fatalf("pull after the first write: %d records, %v", len(p.Records), err)
	}
}

// markerKind is an unscoped kind of TestLimitsScopedNotices: its notice,
// sent after the scoped ones, tells the subscriber they have all arrived.
const markerKind = "tt_marker"

// TestLimitsScopedNotices: a notice never names a record the subscriber
// may not read (bob hears nothing of the id or version of alice's note),
// and a replica still pulls on a notice that names only the kind.
func TestLimitsScopedNotices(t *testing.T, h Harness) {
	if !h.Features().Realtime {
		t.Skip("Features.Realtime not claimed")
	}
	w := newWorld(t, h, modeClean, func(o *server.Options) {
		scoped(o)
		o.Tables = append(o.Tables, core.Documents(markerKind))
	})
	bob, ok := w.client("bob").(core.Subscriber)
	if !ok {
		t.Fatalf("Features.Realtime is claimed but the client is not a core.Subscriber")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var ch <-chan core.Notice
	var err error
	for range 20 {
		if ch, err = bob.Subscribe(ctx, []string{NoteKind, markerKind}); err == nil || !core.Retryable(err) {
			break
		}
	}
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	alice := w.client("alice")
	res := push(t, alice, []core.Op{{OpID: "lim-secret", Kind: NoteKind, ID: "secret", Type: core.OpUpsert,
		Payload: []byte(`{"w":"lim-secret","owner":"alice"}`)}})
	secret := res[0].Record
	if res[0].Status != core.StatusApplied || secret == nil {
		t.Fatalf("alice's write answered %s", res[0].Status)
	}
	push(t, alice, []core.Op{{OpID: "lim-marker", Kind: markerKind, ID: "m", Type: core.OpUpsert, Payload: []byte(`{"w":"lim-marker"}`)}})
	timeout := time.NewTimer(30 * time.Second) // a safety net only: the marker's notice ends the wait
	defer timeout.Stop()
	for done := false; !done; {
		select {
		case n, ok := <-ch:
			if !ok {
				t.Fatal("the notice stream closed before the marker's notice")
			}
			switch {
			case n.Gap:
			case n.Kind == markerKind:
				done = true
			case n.ID == "secret" || (!n.UpdatedAt.IsZero() && n.UpdatedAt.Equal(secret.UpdatedAt)):
				t.Errorf("bob's notice %+v names alice's record (or its version)", n)
			}
		case <-timeout.C:
			t.Fatal("no notice of the marker kind arrived")
		}
	}
	cancel()

	// bob's laptop runs realtime; what bob's phone writes reaches it through
	// a notice that names only the kind.
	laptop := w.replica("laptop", replicaOptions{token: "bob"})
	phone := w.replica("phone", replicaOptions{token: "bob"})
	events := laptop.eng.Subscribe(256)
	rctx, rcancel := context.WithCancel(t.Context())
	runDone := make(chan error, 1)
	go func() { runDone <- laptop.eng.Run(rctx, core.Realtime()) }()
	defer func() {
		rcancel()
		<-runDone
	}()
	waitEvent(t, events.C, func(e core.Event) bool { _, ok := e.(core.SyncCompleted); return ok }) // the catch-up sync of Run
	phone.put(t, "mine", map[string]any{"w": "lim-mine", "owner": "bob"})
	w.sync(t, phone)
	waitEvent(t, events.C, func(e core.Event) bool {
		p, ok := e.(core.PagePulled)
		return ok && p.Kind == NoteKind && p.Upserts > 0
	})
	if _, ok := laptop.record(t, "mine"); !ok {
		t.Fatalf("bob's laptop pulled after the notice but has no record mine")
	}
	if _, ok := laptop.record(t, "secret"); ok {
		t.Fatalf("bob's laptop pulled alice's record")
	}
}

// waitEvent reads engine events until one matches.
func waitEvent(t testing.TB, ch <-chan core.Event, match func(core.Event) bool) {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second) // a safety net only
	defer timeout.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("the engine's events ended")
			}
			if match(e) {
				return
			}
		case <-timeout.C:
			t.Fatal("the awaited engine event did not come")
		}
	}
}
