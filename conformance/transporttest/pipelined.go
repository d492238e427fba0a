package transporttest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/offsync/offsync/core"
)

// TestPipelined: a client that is a core.Pipeliner takes PushDepth pushes at
// once — called together, each answers its own ops, every op is applied
// once — and an engine that keeps that many batches in flight over it ends
// equal to the authority, with every record at its last write.
func TestPipelined(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		c := w.client("")
		p, ok := c.(core.Pipeliner)
		if !ok || p.PushDepth() < 2 {
			t.Skipf("%T does not carry several pushes at once (not a core.Pipeliner, or PushDepth < 2)", c)
		}
		depth := p.PushDepth()

		// Raw: depth pushes called together, each of its own records.
		const per = 20
		answers := make([][]core.PushResult, depth)
		var wg sync.WaitGroup
		for g := range depth {
			ops := make([]core.Op, per)
			for i := range ops {
				ops[i] = core.Op{OpID: fmt.Sprintf("pl-%d-%d", g, i), Kind: NoteKind, ID: fmt.Sprintf("pl-%d-%d", g, i),
					Type: core.OpUpsert, Payload: fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)}
			}
			wg.Go(func() { answers[g] = push(t, c, ops) })
		}
		wg.Wait()
		for g, res := range answers {
			if len(res) != per {
				t.Fatalf("push %d: %d answers for %d ops", g, len(res), per)
			}
			for i, r := range res {
				if want := fmt.Sprintf("pl-%d-%d", g, i); r.OpID != want || r.Status != core.StatusApplied {
					t.Errorf("push %d answer %d: %s %s, want %s applied (answers crossed between pushes in flight?)", g, i, r.OpID, r.Status, want)
				}
			}
		}
		w.checkAppliedOnce(t)

		// Through the engine: batches of 7 over 60 records written three
		// times each, so several batches are in flight and a record's
		// later writes follow its earlier ones.
		a := w.replica("a", replicaOptions{batchSize: 7})
		b := w.replica("b", replicaOptions{})
		for round := range 3 {
			for i := range 60 {
				a.put(t, fmt.Sprintf("e-%d", i), map[string]any{"round": round, "i": i})
			}
			if round == 1 {
				w.sync(t, a) // the third round's writes sit on records the authority already has
			}
		}
		w.sync(t, a)
		if n := a.pending(t); n != 0 {
			t.Fatalf("%d ops still pending after a sync", n)
		}
		w.sync(t, b)
		w.converged(t, a, b)
		for i := range 60 {
			rec, ok := w.authorityRecord(t, fmt.Sprintf("e-%d", i))
			if !ok {
				t.Fatalf("e-%d missing at the authority", i)
			}
			if f := fieldsOf(t, rec); f["round"] != float64(2) {
				t.Errorf("e-%d at the authority has round %v, want 2 (a later write overtaken by an earlier one)", i, f["round"])
			}
		}
		w.checkAppliedOnce(t)
	})
}
