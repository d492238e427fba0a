package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

var (
	stT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	stT1 = stT0.Add(time.Minute)
	stT2 = stT0.Add(2 * time.Minute)
	stT3 = stT0.Add(3 * time.Minute)
)

func conflictRecord(data string, updated time.Time) *Record {
	r := &Record{Kind: "moods", ID: "m1", UpdatedAt: updated}
	if data != "" {
		r.Data = json.RawMessage(data)
	}
	return r
}

// The data of the strategy matrix: the local side changed mood and notes and
// removed tag b; energy is the same as in the base; the server changed energy
// and added tag c.
const (
	matrixBase   = `{"mood":3,"energy":1,"notes":"Old","tags":["a","b"]}`
	matrixLocal  = `{"mood":5,"energy":1,"notes":"My notes","tags":["a"]}`
	matrixServer = `{"mood":3,"energy":7,"notes":"Old","tags":["a","b","c"]}`
)

var matrixChanged = []string{"mood", "notes", "tags"}

type conflictScenario string

const (
	scUpsertLive      conflictScenario = "upsert/server record"
	scUpsertTombstone conflictScenario = "upsert/server tombstone"
	scUpsertNotFound  conflictScenario = "upsert/not found"
	scDeleteLive      conflictScenario = "delete/newer server version"
	scDeleteNotFound  conflictScenario = "delete/not found"
)

var conflictScenarios = []conflictScenario{scUpsertLive, scUpsertTombstone, scUpsertNotFound, scDeleteLive, scDeleteNotFound}

// conflictFor builds a conflict; the local edit is later than the server's.
func conflictFor(sc conflictScenario, baseKnown, changedKnown bool) Conflict {
	c := Conflict{
		Kind: "moods", ID: "m1", Strategy: "x", DetectedAt: stT3,
		Op: Op{OpID: "op1", Kind: "moods", ID: "m1", BaseUpdatedAt: stT0, EditedAt: stT2, EnqueuedAt: stT2},
	}
	if baseKnown {
		c.Base = conflictRecord(matrixBase, stT0)
	}
	if changedKnown {
		c.ChangedFields = matrixChanged
	}
	switch sc {
	case scUpsertLive, scUpsertTombstone, scUpsertNotFound:
		c.Op.Type = OpUpsert
		c.Op.Payload = json.RawMessage(matrixLocal)
		c.Local = conflictRecord(matrixLocal, stT0)
		c.Local.EditedAt = stT2
	default:
		c.Op.Type = OpDelete
	}
	switch sc {
	case scUpsertLive, scDeleteLive:
		c.Server = conflictRecord(matrixServer, stT1)
		c.Server.EditedAt = stT1
	case scUpsertTombstone:
		c.Server = conflictRecord("", stT1)
		c.Server.DeletedAt = stT1
	}
	return c
}

func checkResolutionIs(t *testing.T, got Resolution, want Resolution) {
	t.Helper()
	if got.Action != want.Action {
		t.Fatalf("action %v, want %v", got.Action, want.Action)
	}
	if want.Action == ActionAcceptMerged {
		if got.Data == nil {
			t.Fatal("AcceptMerged without data")
		}
		if g, w := mergeCanon(t, got.Data), mergeCanon(t, want.Data); g != w {
			t.Fatalf("merged data\n got %s\nwant %s", g, w)
		}
	} else if got.Data != nil {
		t.Fatalf("%v with data %v", got.Action, got.Data)
	}
}

func TestStrategyMatrix(t *testing.T) {
	merged := func(s string) Resolution { return AcceptMerged(mergeObj(t, s)) }
	autoPreserveLive := map[[2]bool]Resolution{ // {base known, changed known}
		{true, true}:   merged(`{"mood":5,"energy":7,"notes":"My notes","tags":["a","c"]}`),
		{true, false}:  merged(`{"mood":5,"energy":7,"notes":"My notes","tags":["a","c"]}`),
		{false, true}:  merged(`{"mood":5,"energy":7,"notes":"My notes","tags":["a","b","c"]}`),
		{false, false}: merged(`{"mood":5,"energy":1,"notes":"My notes","tags":["a","b","c"]}`),
	}
	// The merge function used in the matrix records what it is given and
	// returns the local data with a marker.
	type mergeCall struct{ base, local, server map[string]any }
	var calls []mergeCall
	mergeFn := MergeWith(func(_ context.Context, base, local, server map[string]any) (map[string]any, error) {
		calls = append(calls, mergeCall{base, local, server})
		out := DefaultMerge(local, server)
		out["merged"] = true
		return out, nil
	})
	manual := Manual(ResolverFunc(func(_ context.Context, c Conflict) (Resolution, error) {
		if c.Op.Type == OpDelete {
			return Discard, nil
		}
		return Defer, nil
	}))

	strategies := []struct {
		name string
		r    Resolver
		want func(sc conflictScenario, baseKnown, changedKnown bool) Resolution
	}{
		{"autoPreserve", AutoPreserve, func(sc conflictScenario, b, c bool) Resolution {
			switch sc {
			case scUpsertLive:
				return autoPreserveLive[[2]bool{b, c}]
			case scUpsertTombstone:
				return merged(matrixLocal)
			case scDeleteLive:
				return AcceptServer
			}
			return AcceptClient
		}},
		{"serverWins", ServerWins, func(conflictScenario, bool, bool) Resolution { return AcceptServer }},
		{"clientWins", ClientWins, func(conflictScenario, bool, bool) Resolution { return AcceptClient }},
		{"lastWriteWins", LastWriteWins, func(conflictScenario, bool, bool) Resolution { return AcceptClient }},
		{"merge", mergeFn, func(sc conflictScenario, b, c bool) Resolution {
			switch sc {
			case scUpsertLive:
				return merged(`{"mood":5,"energy":1,"notes":"My notes","tags":["a"],"merged":true}`)
			case scUpsertTombstone:
				return merged(`{"mood":5,"energy":1,"notes":"My notes","tags":["a"],"merged":true}`)
			case scDeleteLive:
				return AcceptServer
			}
			return AcceptClient
		}},
		{"manual", manual, func(sc conflictScenario, _, _ bool) Resolution {
			if sc == scDeleteLive || sc == scDeleteNotFound {
				return Discard
			}
			return Defer
		}},
	}
	for _, st := range strategies {
		if got := StrategyName(st.r); got != st.name {
			t.Errorf("StrategyName = %q, want %q", got, st.name)
		}
		for _, sc := range conflictScenarios {
			for _, baseKnown := range []bool{true, false} {
				for _, changedKnown := range []bool{true, false} {
					name := fmt.Sprintf("%s/%s/base=%v/changed=%v", st.name, sc, baseKnown, changedKnown)
					t.Run(name, func(t *testing.T) {
						calls = nil
						c := conflictFor(sc, baseKnown, changedKnown)
						before := fmt.Sprintf("%+v %s %s", c, recordData(c.Local), recordData(c.Server))
						res, err := st.r.Resolve(context.Background(), c)
						if err != nil {
							t.Fatal(err)
						}
						checkResolutionIs(t, res, st.want(sc, baseKnown, changedKnown))
						if after := fmt.Sprintf("%+v %s %s", c, recordData(c.Local), recordData(c.Server)); after != before {
							t.Errorf("conflict changed:\n%s\n%s", before, after)
						}
						if st.name != "merge" {
							return
						}
						// The merge function runs for upserts against a
						// server record or tombstone only.
						if sc != scUpsertLive && sc != scUpsertTombstone {
							if len(calls) != 0 {
								t.Fatalf("merge function called for %s", sc)
							}
							return
						}
						if len(calls) != 1 {
							t.Fatalf("merge function called %d times", len(calls))
						}
						call := calls[0]
						if baseKnown != (call.base != nil) {
							t.Errorf("base given = %v, want %v", call.base != nil, baseKnown)
						}
						if baseKnown && mergeCanon(t, call.base) != mergeCanon(t, mergeObj(t, matrixBase)) {
							t.Errorf("base = %s", mergeCanon(t, call.base))
						}
						if mergeCanon(t, call.local) != mergeCanon(t, mergeObj(t, matrixLocal)) {
							t.Errorf("local = %s", mergeCanon(t, call.local))
						}
						if sc == scUpsertTombstone && call.server != nil {
							t.Errorf("server = %v for a tombstone, want nil", call.server)
						}
						if sc == scUpsertLive && mergeCanon(t, call.server) != mergeCanon(t, mergeObj(t, matrixServer)) {
							t.Errorf("server = %s", mergeCanon(t, call.server))
						}
					})
				}
			}
		}
	}
}

func recordData(r *Record) string {
	if r == nil {
		return "<nil>"
	}
	return string(r.Data)
}

func TestAutoPreserveSeedExample(t *testing.T) {
	c := Conflict{
		Kind: "moods", ID: "m1",
		Op:            Op{Type: OpUpsert, Payload: json.RawMessage(`{"mood":5,"notes":"My notes"}`)},
		Local:         conflictRecord(`{"mood":5,"notes":"My notes"}`, stT0),
		Server:        conflictRecord(`{"mood":3,"energy":7,"notes":"Old"}`, stT1),
		ChangedFields: []string{"mood", "notes"},
	}
	res, err := AutoPreserve.Resolve(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	checkResolutionIs(t, res, AcceptMerged(mergeObj(t, `{"mood":5,"energy":7,"notes":"My notes"}`)))
}

func TestAutoPreserveFallsBackToTheOp(t *testing.T) {
	// Without Local, Base and ChangedFields the op's payload, base payload
	// and changed fields are used.
	c := Conflict{
		Kind: "moods", ID: "m1",
		Op: Op{
			Type:          OpUpsert,
			Payload:       json.RawMessage(`{"tags":["a"],"energy":1}`),
			BasePayload:   json.RawMessage(`{"tags":["a","b"],"energy":1}`),
			ChangedFields: []string{"tags", "energy"},
		},
		Server: conflictRecord(`{"tags":["a","b","c"],"energy":7}`, stT1),
	}
	res, err := AutoPreserve.Resolve(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	checkResolutionIs(t, res, AcceptMerged(mergeObj(t, `{"tags":["a","c"],"energy":7}`)))

	c.Op.BasePayload = json.RawMessage("null") // unknown: preserving merge
	c.Op.ChangedFields = []string{"tags"}
	res, err = AutoPreserve.Resolve(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	checkResolutionIs(t, res, AcceptMerged(mergeObj(t, `{"tags":["a","b","c"],"energy":7}`)))
}

func TestStrategiesRejectBadData(t *testing.T) {
	calls := 0
	mergeFn := MergeWith(func(context.Context, map[string]any, map[string]any, map[string]any) (map[string]any, error) {
		calls++
		return map[string]any{}, nil
	})
	bad := []struct {
		name string
		edit func(c *Conflict)
	}{
		{"server data", func(c *Conflict) { c.Server.Data = json.RawMessage(`{"a":`) }},
		{"local data", func(c *Conflict) { c.Local.Data = json.RawMessage(`[1,2]`) }},
		{"base data", func(c *Conflict) { c.Base.Data = json.RawMessage(`"text"`) }},
		{"op payload", func(c *Conflict) { c.Local = nil; c.Op.Payload = json.RawMessage(`nope`) }},
		{"op base payload", func(c *Conflict) { c.Base = nil; c.Op.BasePayload = json.RawMessage(`{"a"}`) }},
	}
	for _, r := range []Resolver{AutoPreserve, mergeFn} {
		for _, b := range bad {
			t.Run(StrategyName(r)+"/"+b.name, func(t *testing.T) {
				c := conflictFor(scUpsertLive, true, true)
				b.edit(&c)
				_, err := r.Resolve(context.Background(), c)
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
			})
		}
	}
	if calls != 0 {
		t.Errorf("merge function called %d times with bad data", calls)
	}
}

func TestLastWriteWins(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Conflict)
		want Resolution
	}{
		{"local later", func(c *Conflict) {}, AcceptClient},
		{"local earlier", func(c *Conflict) { c.Op.EditedAt = stT0 }, AcceptServer},
		{"same instant goes to the server", func(c *Conflict) { c.Op.EditedAt = stT1 }, AcceptServer},
		{"future client time clamped to detection", func(c *Conflict) {
			c.Op.EditedAt = stT3.Add(time.Hour)
			c.Server.EditedAt = stT3.Add(time.Minute) // later than the detection, earlier than the client
		}, AcceptServer},
		{"clamped time still wins over an older edit", func(c *Conflict) {
			c.Op.EditedAt = stT3.Add(time.Hour)
			c.Server.EditedAt = stT2
		}, AcceptClient},
		{"clamped time ties with the server", func(c *Conflict) {
			c.Op.EditedAt = stT3.Add(time.Hour)
			c.Server.EditedAt = stT3
		}, AcceptServer},
		{"no detection time, no clamp", func(c *Conflict) {
			c.DetectedAt = time.Time{}
			c.Op.EditedAt = stT3.Add(time.Hour)
			c.Server.EditedAt = stT3.Add(time.Minute)
		}, AcceptClient},
		{"server edit time falls back to its version", func(c *Conflict) {
			c.Server.EditedAt = time.Time{}
			c.Server.UpdatedAt = stT2.Add(time.Second)
		}, AcceptServer},
		{"server version older than the local edit", func(c *Conflict) {
			c.Server.EditedAt = time.Time{}
			c.Server.UpdatedAt = stT1
		}, AcceptClient},
		{"local edit time falls back to the local record", func(c *Conflict) {
			c.Op.EditedAt = time.Time{}
			c.Local.EditedAt = stT0
		}, AcceptServer},
		{"then to the enqueue time", func(c *Conflict) {
			c.Op.EditedAt, c.Local.EditedAt = time.Time{}, time.Time{}
			c.Op.EnqueuedAt = stT2
		}, AcceptClient},
		{"enqueue time earlier", func(c *Conflict) {
			c.Op.EditedAt, c.Local.EditedAt = time.Time{}, time.Time{}
			c.Op.EnqueuedAt = stT0
		}, AcceptServer},
		{"no local time at all", func(c *Conflict) {
			c.Op.EditedAt, c.Local.EditedAt, c.Op.EnqueuedAt = time.Time{}, time.Time{}, time.Time{}
		}, AcceptServer},
		{"instants, not zones", func(c *Conflict) {
			c.Op.EditedAt = stT2.In(time.FixedZone("x", -5*3600))
			c.Server.EditedAt = stT1.In(time.FixedZone("y", 9*3600))
		}, AcceptClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := conflictFor(scUpsertLive, true, true) // op edited stT2, server edited stT1, detected stT3
			tt.edit(&c)
			res, err := LastWriteWins.Resolve(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			checkResolutionIs(t, res, tt.want)
		})
	}
	t.Run("delete earlier keeps the data", func(t *testing.T) {
		c := conflictFor(scDeleteLive, false, false)
		c.Op.EditedAt = stT0
		res, err := LastWriteWins.Resolve(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		checkResolutionIs(t, res, AcceptServer)
	})
}

var errMergeFailed = errors.New("merge failed")

func TestMergeWith(t *testing.T) {
	t.Run("error from the function", func(t *testing.T) {
		r := MergeWith(func(context.Context, map[string]any, map[string]any, map[string]any) (map[string]any, error) {
			return nil, errMergeFailed
		})
		_, err := r.Resolve(context.Background(), conflictFor(scUpsertLive, true, true))
		if !errors.Is(err, errMergeFailed) {
			t.Fatalf("err = %v, want errMergeFailed", err)
		}
	})
	t.Run("nil result drops the local change", func(t *testing.T) {
		r := MergeWith(func(context.Context, map[string]any, map[string]any, map[string]any) (map[string]any, error) {
			return nil, nil
		})
		res, err := r.Resolve(context.Background(), conflictFor(scUpsertLive, true, true))
		if err != nil {
			t.Fatal(err)
		}
		checkResolutionIs(t, res, AcceptServer)
	})
	t.Run("context passed through", func(t *testing.T) {
		type key struct{}
		ctx := context.WithValue(context.Background(), key{}, "v")
		r := MergeWith(func(ctx context.Context, _, local, _ map[string]any) (map[string]any, error) {
			if ctx.Value(key{}) != "v" {
				return nil, errors.New("context lost")
			}
			return local, nil
		})
		if _, err := r.Resolve(ctx, conflictFor(scUpsertLive, true, true)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the function may modify its maps", func(t *testing.T) {
		r := MergeWith(func(_ context.Context, base, local, server map[string]any) (map[string]any, error) {
			for _, m := range []map[string]any{base, local, server} {
				scribbleAll(m)
			}
			return local, nil
		})
		c := conflictFor(scUpsertLive, true, true)
		if _, err := r.Resolve(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if string(c.Server.Data) != matrixServer || string(c.Local.Data) != matrixLocal || string(c.Base.Data) != matrixBase {
			t.Fatal("conflict data changed")
		}
	})
	t.Run("nil function panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		MergeWith(nil)
	})
}

type fixedBatchResolver struct {
	res []Resolution
	err error
}

func (b fixedBatchResolver) Resolve(context.Context, Conflict) (Resolution, error) {
	return b.res[0], nil
}
func (b fixedBatchResolver) ResolveBatch(_ context.Context, cs []Conflict) ([]Resolution, error) {
	return b.res, b.err
}

func TestManual(t *testing.T) {
	ctx := context.Background()
	c := conflictFor(scUpsertLive, true, true)
	t.Run("delegates", func(t *testing.T) {
		data := map[string]any{"mood": json.Number("9")}
		m := Manual(ResolverFunc(func(context.Context, Conflict) (Resolution, error) { return AcceptMerged(data), nil }))
		res, err := m.Resolve(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		checkResolutionIs(t, res, AcceptMerged(data))
		if _, ok := m.(BatchResolver); ok {
			t.Error("Manual of a plain resolver is a BatchResolver")
		}
	})
	t.Run("errors pass through", func(t *testing.T) {
		m := Manual(ResolverFunc(func(context.Context, Conflict) (Resolution, error) { return Resolution{}, errMergeFailed }))
		if _, err := m.Resolve(ctx, c); !errors.Is(err, errMergeFailed) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("batch passes through", func(t *testing.T) {
		m := Manual(fixedBatchResolver{res: []Resolution{AcceptClient, Defer}})
		if StrategyName(m) != "manual" {
			t.Errorf("name %q", StrategyName(m))
		}
		br, ok := m.(BatchResolver)
		if !ok {
			t.Fatal("Manual dropped BatchResolver")
		}
		res, err := br.ResolveBatch(ctx, []Conflict{c, c})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 2 || res[0].Action != ActionAcceptClient || res[1].Action != ActionDefer {
			t.Fatalf("res = %v", res)
		}
		if _, err := br.ResolveBatch(ctx, []Conflict{c}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("wrong count: err = %v, want ErrInvalid", err)
		}
		failing := Manual(fixedBatchResolver{err: errMergeFailed}).(BatchResolver)
		if _, err := failing.ResolveBatch(ctx, []Conflict{c}); !errors.Is(err, errMergeFailed) {
			t.Fatalf("err = %v, want errMergeFailed", err)
		}
	})
	for _, bad := range []Resolution{{}, {Action: 99}, {Action: ActionAcceptMerged}} {
		t.Run(fmt.Sprintf("invalid %v", bad.Action), func(t *testing.T) {
			m := Manual(ResolverFunc(func(context.Context, Conflict) (Resolution, error) { return bad, nil }))
			if _, err := m.Resolve(ctx, c); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			mb := Manual(fixedBatchResolver{res: []Resolution{AcceptServer, bad}}).(BatchResolver)
			if _, err := mb.ResolveBatch(ctx, []Conflict{c, c}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("batch err = %v, want ErrInvalid", err)
			}
		})
	}
	t.Run("nil resolver panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		Manual(nil)
	})
}

func TestBuiltinStrategy(t *testing.T) {
	for _, name := range []string{"autoPreserve", "serverWins", "clientWins", "lastWriteWins", "manual"} {
		r, err := BuiltinStrategy(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if StrategyName(r) != name {
			t.Errorf("%s: name %q", name, StrategyName(r))
		}
	}
	for _, name := range []string{"merge", "", "ServerWins", "nope"} {
		if _, err := BuiltinStrategy(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", name, err)
		}
	}
	// manual from a configuration: every conflict waits in the inbox.
	manual, _ := BuiltinStrategy("manual")
	for _, c := range []Conflict{
		{Kind: "k", ID: "1", Op: Op{Type: OpUpsert}},
		{Kind: "k", ID: "2", Op: Op{Type: OpDelete}},
	} {
		if res, err := manual.Resolve(context.Background(), c); err != nil || res.Action != ActionDefer {
			t.Errorf("manual on a %s conflict: %+v, %v; want Defer", c.Op.Type, res, err)
		}
	}
	if StrategyName(Conflicts{}.For("any")) != "autoPreserve" {
		t.Error("the default strategy is not autoPreserve")
	}
}
