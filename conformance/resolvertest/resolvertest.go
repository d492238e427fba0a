package resolvertest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// Harness makes the resolver under test.
type Harness interface {
	// NewResolver returns the resolver; the harness releases what it holds
	// when the test ends (t.Cleanup).
	NewResolver(t *testing.T) core.Resolver
	// Features says which optional powers the resolver has.
	Features() Features
}

// Features are a resolver's optional powers. A claimed feature that the
// resolver lacks fails, and so does a power it has without claiming it
// (where the suite can tell).
type Features struct {
	// Batch: the resolver is a core.BatchResolver.
	Batch bool
	// Cancellable: the resolver does I/O (a plugin, a remote service) and
	// answers a call with a cancelled context with an error wrapping the
	// context's error. A resolver without it may still decide a conflict
	// under a cancelled context, since it does no I/O.
	Cancellable bool
}

// Run runs every test of the suite, each as a subtest.
func Run(t *testing.T, h Harness) {
	for _, tc := range Tests() {
		t.Run(tc.Name, func(t *testing.T) { tc.Fn(t, h) })
	}
}

// Test is one test of the suite.
type Test struct {
	Name string
	Fn   func(*testing.T, Harness)
}

// Tests lists the suite's tests.
func Tests() []Test {
	return []Test{
		{"Features", TestFeatures},
		{"ValidResolutions", TestValidResolutions},
		{"Deterministic", TestDeterministic},
		{"DoesNotModifyInput", TestDoesNotModifyInput},
		{"Cancel", TestCancel},
		{"Batch", TestBatch},
	}
}

var t0 = time.Date(2026, 11, 24, 19, 41, 55, 123456000, time.UTC)

func rec(id string, at time.Time, data string, deleted bool) *core.Record {
	r := &core.Record{Kind: "rt_note", ID: id, UpdatedAt: at, EditedAt: at, Data: json.RawMessage(data)}
	if deleted {
		r.DeletedAt = at
	}
	return r
}

// Conflicts returns the suite's conflicts, one of each shape, named.
func Conflicts() map[string]core.Conflict {
	base := rec("n1", t0, `{"title":"base","tags":["a"],"n":1}`, false)
	upsert := core.Op{OpID: "op-1", Kind: "rt_note", ID: "n1", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"title":"local","tags":["a","b"],"n":1}`), BaseUpdatedAt: t0,
		BasePayload: base.Data, ChangedFields: []string{"title", "tags"}, EditedAt: t0.Add(2 * time.Second), EnqueuedAt: t0.Add(2 * time.Second)}
	local := rec("n1", t0, string(upsert.Payload), false)
	local.EditedAt = upsert.EditedAt
	del := core.Op{OpID: "op-2", Kind: "rt_note", ID: "n1", Type: core.OpDelete, BaseUpdatedAt: t0, EditedAt: t0.Add(2 * time.Second), EnqueuedAt: t0.Add(2 * time.Second)}
	server := rec("n1", t0.Add(time.Second), `{"title":"base","tags":["a","c"],"n":2}`, false)
	newer := rec("n1", t0.Add(3*time.Second), `{"title":"server","n":3}`, false)
	tomb := rec("n1", t0.Add(time.Second), `{"title":"base"}`, true)
	create := upsert
	create.OpID, create.BaseUpdatedAt, create.BasePayload, create.ChangedFields = "op-3", time.Time{}, nil, nil
	c := func(op core.Op, b, l, s *core.Record) core.Conflict {
		return core.Conflict{Kind: "rt_note", ID: "n1", Op: op, Base: b, Local: l, Server: s,
			ChangedFields: op.ChangedFields, DetectedAt: t0.Add(4 * time.Second)}
	}
	return map[string]core.Conflict{
		"upsert-vs-live":        c(upsert, base, local, server),
		"upsert-vs-newer-edit":  c(upsert, base, local, newer),
		"upsert-without-base":   c(upsert, nil, local, server),
		"create-over-existing":  c(create, nil, local, server),
		"upsert-vs-tombstone":   c(upsert, base, local, tomb),
		"delete-vs-newer":       c(del, base, nil, server),
		"delete-vs-tombstone":   c(del, base, nil, tomb),
		"upsert-missing-record": c(upsert, base, local, nil),
		"delete-missing-record": c(del, base, nil, nil),
	}
}

// check fails unless res is a valid resolution of c.
func check(t *testing.T, name string, res core.Resolution) {
	t.Helper()
	switch res.Action {
	case core.ActionAcceptServer, core.ActionAcceptClient, core.ActionDefer, core.ActionDiscard:
	case core.ActionAcceptMerged:
		if res.Data == nil {
			t.Errorf("%s: AcceptMerged without data", name)
		}
		for k := range res.Data {
			if err := core.CheckFieldName(k); err != nil {
				t.Errorf("%s: AcceptMerged data has the reserved field %q: %v", name, k, err)
			}
		}
		if _, err := json.Marshal(res.Data); err != nil {
			t.Errorf("%s: AcceptMerged data is not JSON: %v", name, err)
		}
	default:
		t.Errorf("%s: unknown action %d", name, res.Action)
	}
}

func resolve(t *testing.T, r core.Resolver, name string, c core.Conflict) core.Resolution {
	t.Helper()
	res, err := r.Resolve(t.Context(), c)
	if err != nil {
		t.Fatalf("%s: Resolve: %v", name, err)
	}
	return res
}

// TestFeatures: the resolver has exactly the claimed batch power.
func TestFeatures(t *testing.T, h Harness) {
	r := h.NewResolver(t)
	if r == nil {
		t.Fatal("harness NewResolver returned nil")
	}
	_, batch := r.(core.BatchResolver)
	switch f := h.Features(); {
	case f.Batch && !batch:
		t.Errorf("Features.Batch is claimed but %T is not a core.BatchResolver", r)
	case !f.Batch && batch:
		t.Errorf("%T is a core.BatchResolver but Features.Batch is not claimed", r)
	}
}

// TestValidResolutions: every conflict gets a known action; AcceptMerged
// has data without reserved names.
func TestValidResolutions(t *testing.T, h Harness) {
	r := h.NewResolver(t)
	for name, c := range Conflicts() {
		check(t, name, resolve(t, r, name, c))
	}
}

// TestDeterministic: the same conflict gets the same resolution.
func TestDeterministic(t *testing.T, h Harness) {
	r := h.NewResolver(t)
	for name, c := range Conflicts() {
		a := resolve(t, r, name, c)
		b := resolve(t, r, name, Conflicts()[name])
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: resolved %+v, then %+v", name, a, b)
		}
	}
}

// TestDoesNotModifyInput: resolving leaves the conflict's records and op as
// they were.
func TestDoesNotModifyInput(t *testing.T, h Harness) {
	r := h.NewResolver(t)
	for name, c := range Conflicts() {
		res := resolve(t, r, name, c)
		if !reflect.DeepEqual(c, Conflicts()[name]) {
			t.Errorf("%s: Resolve modified its input", name)
		}
		if res.Action == core.ActionAcceptMerged {
			res.Data["__probe"] = 1 // the result must share nothing with the input
			if !reflect.DeepEqual(c, Conflicts()[name]) {
				t.Errorf("%s: the merged data shares memory with the input", name)
			}
		}
	}
}

// TestCancel: with a cancelled context, a Cancellable resolver fails with
// the context's error; any resolver either does so or answers validly.
func TestCancel(t *testing.T, h Harness) {
	r := h.NewResolver(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, c := range Conflicts() {
		res, err := r.Resolve(ctx, c)
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			t.Errorf("%s: Resolve under a cancelled context: %v, want an error wrapping context.Canceled", name, err)
		case err == nil && h.Features().Cancellable:
			t.Errorf("%s: Features.Cancellable is claimed but Resolve under a cancelled context answered %v", name, res.Action)
		case err == nil:
			check(t, name, res)
		}
	}
}

// TestBatch: a BatchResolver answers one resolution per conflict, in
// order, each equal to the single answer; an empty batch is an empty answer.
func TestBatch(t *testing.T, h Harness) {
	if !h.Features().Batch {
		t.Skip("Features.Batch not claimed")
	}
	r := h.NewResolver(t)
	b, ok := r.(core.BatchResolver)
	if !ok {
		t.Fatalf("Features.Batch is claimed but %T is not a core.BatchResolver", r)
	}
	all := Conflicts()
	sorted := make([]string, 0, len(all))
	for name := range all {
		sorted = append(sorted, name)
	}
	slices.Sort(sorted)
	// The batch in a fixed order and rotated by one: an answer out of order
	// then shows in one of them unless every answer is the same.
	for shift := range 2 {
		names := append(slices.Clone(sorted[shift:]), sorted[:shift]...)
		cs := make([]core.Conflict, len(names))
		for i, name := range names {
			cs[i] = all[name]
		}
		res, err := b.ResolveBatch(t.Context(), cs)
		if err != nil {
			t.Fatalf("ResolveBatch: %v", err)
		}
		if len(res) != len(cs) {
			t.Fatalf("ResolveBatch of %d conflicts answered %d resolutions", len(cs), len(res))
		}
		for i := range cs {
			check(t, names[i], res[i])
			if one := resolve(t, r, names[i], Conflicts()[names[i]]); !reflect.DeepEqual(one, res[i]) {
				t.Errorf("%s: batch answer %+v differs from the single answer %+v (out of order?)", names[i], res[i], one)
			}
		}
	}
	if res, err := b.ResolveBatch(t.Context(), nil); err != nil || len(res) != 0 {
		t.Errorf("ResolveBatch of no conflicts = %v, %v", res, err)
	}
}
