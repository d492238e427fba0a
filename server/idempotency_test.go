package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// replayScenario applies, to one record of each of a document kind, a
// scoped kind and a typed kind, a run of ops that each change the row (an
// upsert, an update, a delete, a forced re-create whose payload the scope
// rewrites on the scoped kind, a delete, the delete of that tombstone,
// which writes no version, and a last update), then sends every op again,
// one per batch and then all in one batch, and returns the first replay
// whose answer is not exactly the op's first answer. Every replay comes
// after the row has moved on, so an answer rebuilt from the row as it
// stands is caught.
func replayScenario(t *testing.T, ctx context.Context, svc *server.Service) error {
	t.Helper()
	edited := t0.Add(-time.Hour)
	var ops []core.Op
	var first []core.PushResult
	for _, kind := range []string{"note", "task", "gadget"} {
		id := kind + "-1"
		apply := func(op core.Op) core.PushResult {
			t.Helper()
			r := push1(t, ctx, svc, op)
			if r.Status != core.StatusApplied {
				t.Fatalf("%s: %v %s", op.OpID, r.Status, r.Reason)
			}
			ops, first = append(ops, op), append(first, r)
			return r
		}
		u1 := upsert(kind+"-u1", kind, id, `{"name":"one", "n":1}`, time.Time{})
		u1.EditedAt = edited
		a := apply(u1)
		a = apply(upsert(kind+"-u2", kind, id, `{"name":"two","n":2}`, a.Record.UpdatedAt))
		a = apply(del(kind+"-d3", kind, id, a.Record.UpdatedAt))
		u4 := upsert(kind+"-u4", kind, id, `{"name":"four","n":4,"owner":"mallory"}`, time.Time{})
		u4.Force = true
		if kind == "gadget" {
			u4.Payload = []byte(`{"name":"four","n":4}`)
		}
		a = apply(u4)
		a = apply(del(kind+"-d5", kind, id, a.Record.UpdatedAt))
		apply(del(kind+"-d6", kind, id, a.Record.UpdatedAt))
		last := upsert(kind+"-u7", kind, id, `{"name":"seven","n":7}`, time.Time{})
		last.Force = true
		apply(last)
	}
	check := func(got core.PushResult, i int) error {
		want := first[i]
		switch {
		case got.Status != want.Status || (got.Record == nil) != (want.Record == nil):
			return fmt.Errorf("replay of %s answered %v, first %v", ops[i].OpID, got.Status, want.Status)
		case got.Record == nil:
			return nil
		}
		g, w := got.Record, want.Record
		if g.Kind != w.Kind || g.ID != w.ID || !g.UpdatedAt.Equal(w.UpdatedAt) || !g.DeletedAt.Equal(w.DeletedAt) ||
			!g.EditedAt.Equal(w.EditedAt) || !bytes.Equal(g.Data, w.Data) {
			return fmt.Errorf("replay of %s answered\n  %s\nfirst answer\n  %s", ops[i].OpID, showAnswer(g), showAnswer(w))
		}
		return nil
	}
	for i, op := range ops {
		if err := check(push1(t, ctx, svc, op), i); err != nil {
			return fmt.Errorf("alone: %w", err)
		}
	}
	for i, r := range push(t, ctx, svc, ops...) {
		if err := check(r, i); err != nil {
			return fmt.Errorf("in one batch: %w", err)
		}
	}
	return nil
}

func showAnswer(r *core.Record) string {
	return fmt.Sprintf("%s/%s updated %s deleted %s edited %s data %s", r.Kind, r.ID,
		r.UpdatedAt.Format(core.TimeLayout), r.DeletedAt.Format(core.TimeLayout), r.EditedAt.Format(core.TimeLayout), r.Data)
}

func replayService(t *testing.T, st core.Store) *server.Service {
	return newServiceOn(t, st, &server.Options{
		Tables: []core.Table{core.Documents("note"), core.Documents("task"), core.NewTable[gadget]("gadget")},
		Scope:  taskScope,
	})
}

// A re-sent op gets exactly the answer it got first — version, deletion,
// edit time and data — even after later ops changed or deleted its row,
// through the bulk path and op by op. The authority keeps only the version
// columns for most answers (idemRecord) and rebuilds the rest from the
// request.
func TestInvariant14_ReplayAfterLaterOpsGetsTheFirstAnswer(t *testing.T) {
	for _, batch := range []bool{true, false} {
		t.Run(fmt.Sprintf("bulk=%v", batch), func(t *testing.T) {
			ctx := core.WithPrincipal(t.Context(), core.Principal{ID: "alice"})
			svc := replayService(t, &countingStore{Store: newStore(t), batch: batch, n: &txCounts{}})
			if err := replayScenario(t, ctx, svc); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The negative control: an authority that answers a re-sent op from the
// row as it stands (here, a store that hands back the current row in
// place of the kept answer) is caught.
func TestInvariant14_NegativeControl_ReplayFromCurrentRowIsCaught(t *testing.T) {
	ctx := core.WithPrincipal(t.Context(), core.Principal{ID: "alice"})
	svc := replayService(t, rowAnswerStore{newStore(t)})
	err := replayScenario(t, ctx, svc)
	if err == nil {
		t.Fatal("answers rebuilt from the current row went unnoticed")
	}
	t.Logf("caught: %v", err)
}

// rowAnswerStore's transactions return, for an idempotency record, the
// record's row as it stands now instead of the answer kept with it.
type rowAnswerStore struct{ core.Store }

type rowAnswerTx struct{ core.Tx }

func (s rowAnswerStore) Update(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	return s.Store.Update(ctx, func(ctx context.Context, tx core.Tx) error { return fn(ctx, rowAnswerTx{tx}) })
}

func (t rowAnswerTx) Idempotent(ctx context.Context, principal, opID string) (core.IdempotencyRecord, error) {
	r, err := t.Tx.Idempotent(ctx, principal, opID)
	if err != nil || r.Record == nil {
		return r, err
	}
	kind, id, _ := cutOpID(opID)
	cur, err := t.Tx.Get(ctx, kind, id)
	if errors.Is(err, core.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	r.Record = &cur
	return r, nil
}

// cutOpID returns the kind and record id of an op id of replayScenario
// ("gadget-u1" is an op on gadget/gadget-1).
func cutOpID(opID string) (kind, id string, ok bool) {
	for _, k := range []string{"note", "task", "gadget"} {
		if len(opID) > len(k) && opID[:len(k)+1] == k+"-" {
			return k, k + "-1", true
		}
	}
	return "", "", false
}
