package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

// rejectIDs answers the ops of the given ids Rejected (permanent or not)
// and sends the others to the authority.
func rejectIDs(permanent bool, ids ...string) func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
	bad := map[string]bool{}
	for _, id := range ids {
		bad[id] = true
	}
	return func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
		out := make([]core.PushResult, len(ops))
		var pass []core.Op
		var at []int
		for i, op := range ops {
			if bad[op.ID] {
				out[i] = core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Reason: "test: refused", Permanent: permanent}
				continue
			}
			pass = append(pass, op)
			at = append(at, i)
		}
		if len(pass) > 0 {
			res, err := inner.Push(ctx, pass)
			if err != nil {
				return nil, err
			}
			for j, i := range at {
				out[i] = res[j]
			}
		}
		return out, nil
	}
}

func opOf(t *testing.T, r *replica, id string) core.Op {
	t.Helper()
	for _, op := range r.ops(t) {
		if op.ID == id {
			return op
		}
	}
	t.Fatalf("no op for %s", id)
	return core.Op{}
}

func TestInvariant7_BackoffDeadLettersAndDeferredCoalescing(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, permanentAnswers bool) error {
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		clock := core.NewManualClock(t0)
		r := newReplica(t, w, &core.Options{Clock: clock, MaxAttempts: 4,
			Backoff: core.Backoff{Initial: time.Second, Max: 3 * time.Second, Multiplier: 2, Jitter: 0.1}})
		sub := r.eng.Subscribe(256)
		w.set(rejectIDs(permanentAnswers, "bad"))
		_ = r.notes.Put(ctx, "bad", map[string]any{"v": 1})
		_ = r.notes.Put(ctx, "good", map[string]any{"v": 1})
		_, _ = r.eng.Sync(ctx)
		if _, ok := authGet(t, svc, "note", "good"); !ok {
			return errors.New("a failing op blocked another record's op")
		}
		var delays []time.Duration
		for attempt := 1; attempt < 4; attempt++ {
			op := opOf(t, r, "bad")
			if op.State != core.StatePending || op.Attempts != attempt {
				return fmt.Errorf("attempt %d: op %s with %d attempts", attempt, op.State, op.Attempts)
			}
			d := op.NextAttemptAt.Sub(clock.Now())
			delays = append(delays, d)
			w.reset()
			_, _ = r.eng.Sync(ctx) // still backing off: not pushed
			if len(w.pushes) != 0 {
				return errors.New("an op was pushed before its backoff ended")
			}
			clock.Advance(d)
			_, _ = r.eng.Sync(ctx)
		}
		// 1s, 2s, then capped at 3s, each ±10%.
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
			if delays[i] < want*85/100 || delays[i] > want*115/100 || delays[i] > 3*time.Second {
				return fmt.Errorf("delay %d = %v, want about %v capped at 3s", i+1, delays[i], want)
			}
		}
		if op := opOf(t, r, "bad"); op.State != core.StateDead {
			return fmt.Errorf("over its budget the op is %s", op.State)
		}
		sub.Close()
		dead := false
		for ev := range sub.C {
			if f, ok := ev.(core.OpFailed); ok && f.Dead && f.Op.ID == "bad" {
				dead = true
			}
		}
		if !dead {
			return errors.New("no dead-letter event")
		}
		return nil
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("a permanent rejection is dead at once", func(t *testing.T) {
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		r := newReplica(t, w, nil)
		w.set(rejectIDs(true, "bad"))
		_ = r.notes.Put(ctx, "bad", map[string]any{"v": 1})
		_, _ = r.eng.Sync(ctx)
		if op := opOf(t, r, "bad"); op.State != core.StateDead || op.Attempts != 1 {
			t.Fatalf("op %+v", op)
		}
		if dl, _ := r.eng.DeadLetters(ctx); len(dl) != 1 {
			t.Fatalf("dead letters %v", dl)
		}
	})
	t.Run("edits to a deferred op coalesce into it and refresh the inbox", func(t *testing.T) {
		svc := newAuthority(t, nil)
		defer_ := core.Manual(core.ResolverFunc(func(context.Context, core.Conflict) (core.Resolution, error) {
			return core.Defer, nil
		}))
		a := newReplica(t, svc, &core.Options{Conflicts: core.Conflicts{Default: defer_}})
		b := newReplica(t, svc, nil)
		_ = a.notes.Put(ctx, "x", map[string]any{"v": 0})
		mustSync(t, a)
		mustSync(t, b)
		_ = b.notes.Put(ctx, "x", map[string]any{"v": "b"})
		mustSync(t, b)
		_ = a.notes.Put(ctx, "x", map[string]any{"v": "a1"})
		mustSync(t, a)
		inbox, _ := a.eng.Conflicts(ctx, core.ConflictFilter{})
		if len(inbox) != 1 {
			t.Fatalf("inbox %v", inbox)
		}
		_ = a.notes.Put(ctx, "x", map[string]any{"v": "a2"})
		ops := a.ops(t)
		if len(ops) != 1 || ops[0].State != core.StateDeferred || ops[0].OpID == inbox[0].OpID {
			t.Fatalf("ops %+v", ops)
		}
		inbox2, _ := a.eng.Conflicts(ctx, core.ConflictFilter{})
		if len(inbox2) != 1 || inbox2[0].OpID != ops[0].OpID || field(t, *inbox2[0].Local, "v") != "a2" {
			t.Fatalf("inbox not refreshed: %+v", inbox2)
		}
	})
	t.Run("negative control: a transport that makes every rejection permanent is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the check missed the lost retries")
		}
	})
}

func TestInvariant8_SyncAlwaysEnds(t *testing.T) {
	ctx := context.Background()
	// hot: another writer lands on the record before every push, so every
	// push and every resolution push meets a conflict.
	run := func(t *testing.T, duplicate bool) error {
		svc := newAuthority(t, nil)
		other := newReplica(t, svc, nil)
		w := &wire{inner: svc}
		r := newReplica(t, w, nil)
		_ = r.notes.Put(ctx, "hot", map[string]any{"n": 0})
		mustSync(t, r)
		mustSync(t, other)
		i := 0
		w.set(func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
			i++
			_ = other.notes.Put(ctx, "hot", map[string]any{"n": 100 + i}, core.Changed("n"))
			if _, err := other.eng.Sync(ctx, core.PullKinds()); err != nil {
				return nil, err
			}
			if duplicate {
				_, _ = inner.Push(ctx, ops)
				_, _ = inner.Push(ctx, ops)
			}
			return inner.Push(ctx, ops)
		})
		_ = r.notes.Put(ctx, "hot", map[string]any{"n": 1, "mine": true}, core.Changed("mine"))
		st, _ := r.eng.Sync(ctx) // must return
		for id, n := range w.pushCount() {
			count := n
			if duplicate {
				count = n * 3
			}
			if count > 2 {
				return fmt.Errorf("op %s pushed %d times in one sync", id, count)
			}
		}
		if st.Conflicts == 0 {
			return errors.New("no conflict met")
		}
		if len(r.ops(t)) != 1 {
			return errors.New("the op left the outbox though it never applied")
		}
		return nil
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("a deferred op is not pushed again", func(t *testing.T) {
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		a := newReplica(t, w, &core.Options{Conflicts: core.Conflicts{Default: core.Manual(core.ResolverFunc(
			func(context.Context, core.Conflict) (core.Resolution, error) { return core.Defer, nil }))}})
		b := newReplica(t, svc, nil)
		_ = b.notes.Put(ctx, "x", map[string]any{"v": "b"})
		mustSync(t, b)
		_ = a.notes.Put(ctx, "x", map[string]any{"v": "a"}) // a create over b's row: a conflict
		mustSync(t, a)
		w.reset()
		mustSync(t, a)
		if len(w.pushes) != 0 {
			t.Fatalf("deferred op pushed again: %v", w.pushes)
		}
	})
	t.Run("a result the transport left out", func(t *testing.T) {
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		r := newReplica(t, w, nil)
		w.set(func(context.Context, []core.Op, core.Transport) ([]core.PushResult, error) { return nil, nil })
		_ = r.notes.Put(ctx, "x", map[string]any{"v": 1})
		_, _ = r.eng.Sync(ctx)
		if n := w.pushCount(); len(n) != 1 {
			t.Fatalf("pushes %v", n)
		}
		if op := r.ops(t)[0]; op.Attempts != 0 {
			t.Fatalf("a missing answer burned an attempt: %+v", op)
		}
	})
	t.Run("negative control: a transport that delivers pushes three times is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the push count check missed extra pushes")
		}
	})
}

func TestInvariant9_TransientFailuresBurnNoAttempts(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, misclassify bool) error {
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		clock := core.NewManualClock(t0)
		r := newReplica(t, w, &core.Options{Clock: clock})
		_ = r.notes.Put(ctx, "x", map[string]any{"v": 1})
		failures := []error{errOffline, core.ErrUnauthorized, fmt.Errorf("503: %w", core.ErrUnavailable)}
		for _, f := range failures {
			w.set(func(ctx context.Context, ops []core.Op, _ core.Transport) ([]core.PushResult, error) {
				if misclassify {
					res := make([]core.PushResult, len(ops))
					for i, op := range ops {
						res[i] = core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Reason: f.Error()}
					}
					return res, nil
				}
				return nil, f
			})
			_, err := r.eng.Sync(ctx)
			if err == nil {
				return errors.New("a failed push reported no error")
			}
			clock.Advance(time.Hour)
		}
		// A 429: retry after the given delay.
		w.set(func(ctx context.Context, ops []core.Op, _ core.Transport) ([]core.PushResult, error) {
			res := make([]core.PushResult, len(ops))
			for i, op := range ops {
				res[i] = core.PushResult{OpID: op.OpID, Status: core.StatusRetry, RetryAfter: 30 * time.Second}
			}
			return res, nil
		})
		_, _ = r.eng.Sync(ctx)
		op := opOf(t, r, "x")
		if op.Attempts != 0 {
			return fmt.Errorf("transient failures burned %d attempts", op.Attempts)
		}
		if !op.NextAttemptAt.Equal(clock.Now().Add(30 * time.Second)) {
			return fmt.Errorf("Retry-After not honoured: next attempt %v", op.NextAttemptAt)
		}
		clock.Advance(30 * time.Second)
		w.set(nil)
		mustSync(t, r)
		if _, ok := authGet(t, svc, "note", "x"); !ok {
			return errors.New("not applied once the authority was back")
		}
		return nil
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("negative control: a transport that reports outages as rejections is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the check missed burned attempts")
		}
	})
}

func TestInvariant10_PullKeepsLocalColumnsAndMicroseconds(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, truncate bool) error {
		svc := newAuthority(t, &serverOptionsClock)
		w := &wire{inner: svc}
		if truncate {
			w.onPull = func(p core.Page) core.Page {
				for i := range p.Records {
					p.Records[i].UpdatedAt = p.Records[i].UpdatedAt.Truncate(time.Millisecond)
				}
				return p
			}
		}
		st := openStore(t, "r.db")
		r := newReplicaOn(t, st, w, nil)
		other := newReplica(t, svc, nil)
		_ = other.todos.Insert(ctx, &Todo{ID: "x", Title: "1"})
		mustSync(t, other)
		if _, err := r.eng.Sync(ctx); err != nil {
			return err
		}
		if _, err := st.DB().NewUpdate().Model((*Todo)(nil)).Set("note = ?", "mine").Where("id = ?", "x").Exec(ctx); err != nil {
			t.Fatal(err)
		}
		_ = other.todos.Update(ctx, &Todo{ID: "x", Title: "2"}, core.Changed("title"))
		mustSync(t, other)
		if _, err := r.eng.Sync(ctx); err != nil {
			return err
		}
		var got Todo
		if err := st.DB().NewSelect().Model(&got).Where("id = ?", "x").Scan(ctx); err != nil {
			t.Fatal(err)
		}
		server, _ := authGet(t, svc, "todo", "x")
		if got.Note != "mine" {
			return fmt.Errorf("pull overwrote the local column: %q", got.Note)
		}
		if got.Title != "2" || got.UpdatedAt.UnixMicro() != server.UpdatedAt.UnixMicro() || server.UpdatedAt.Nanosecond()%1000 != 0 {
			return fmt.Errorf("row %q@%v, authority @%v", got.Title, got.UpdatedAt.Time, server.UpdatedAt)
		}
		return nil
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("negative control: a transport that truncates timestamps is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the check missed lost microseconds")
		}
	})
}

func TestInvariant11_QueuedOpsSurviveSchemaChange(t *testing.T) {
	ctx := context.Background()
	rename := func(_ context.Context, from int, p json.RawMessage) (json.RawMessage, error) {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		m["body"] = m["text"]
		delete(m, "text")
		return json.Marshal(m)
	}
	run := func(t *testing.T, hook core.UpgradeFunc) error {
		svc := newAuthority(t, nil)
		path := t.TempDir() + "/r.db"
		st1, err := sqlite.Open(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		v1 := newReplicaOn(t, st1, svc, &core.Options{Tables: []core.Table{core.Documents("note")}})
		if err := v1.notes.Put(ctx, "n", map[string]any{"text": "queued under v1"}); err != nil {
			t.Fatal(err)
		}
		v1.eng.Close()
		st1.Close()

		st2 := openStoreAt(t, path)
		v2 := newReplicaOn(t, st2, svc, &core.Options{Tables: []core.Table{core.Documents("note", core.WithSchema(2, hook))}})
		_, _ = v2.eng.Sync(ctx)
		rec, ok := authGet(t, svc, "note", "n")
		if !ok || field(t, rec, "body") != "queued under v1" || field(t, rec, "text") != nil {
			return fmt.Errorf("authority holds %s", rec.Data)
		}
		return nil
	}
	if err := run(t, rename); err != nil {
		t.Fatal(err)
	}
	t.Run("negative control: a table without its upgrade hook is caught", func(t *testing.T) {
		if run(t, nil) == nil {
			t.Fatal("the check missed an op pushed without its upgrade")
		}
	})
}

// A push refused as a whole because its kind is unknown to the authority
// sends the op to the dead letters at once (no retry can help) and Sync
// reports the error.
func TestPushOfAnUnknownKindIsDeadAtOnce(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil) // serves project, todo, note
	r := newReplica(t, svc, &core.Options{Tables: []core.Table{notes, core.Documents("extra")}})
	if err := core.DocsFor(r.eng, core.Documents("extra")).Put(ctx, "x", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Sync(ctx, core.PushKinds("extra"), core.PullKinds()); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("sync: %v", err)
	}
	if op := opOf(t, r, "x"); op.State != core.StateDead || op.Attempts != 1 {
		t.Fatalf("op %s with %d attempts", op.State, op.Attempts)
	}
}
