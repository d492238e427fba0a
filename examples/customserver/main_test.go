package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// device is a replica of the inventory for one user.
type device struct {
	eng   *core.Engine
	store *sqlite.Store
	items *core.Writer[Item]
}

func newDevice(t *testing.T, url, token string) *device {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "replica.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	client := rest.NewClient(url, &rest.Options{Token: func(context.Context, bool) (string, error) { return token, nil }})
	eng, err := core.NewEngine(ctx, st, client, &core.Options{
		Tables:    []core.Table{Items},
		Conflicts: core.Conflicts{Default: core.ClientWins},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &device{eng: eng, store: st, items: core.WriterFor(eng, Items)}
}

func (d *device) sync(t *testing.T) core.Stats {
	t.Helper()
	st, err := d.eng.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return st
}

func (d *device) get(t *testing.T, id string) (Item, bool) {
	t.Helper()
	var it Item
	err := d.store.DB().NewSelect().Model(&it).Where("id = ?", id).Scan(context.Background())
	if err != nil {
		return Item{}, false
	}
	return it, true
}

func (d *device) setStock(t *testing.T, id string, stock int) {
	t.Helper()
	it, ok := d.get(t, id)
	if !ok {
		t.Fatalf("no local item %s", id)
	}
	it.Stock = stock
	if err := d.items.Update(context.Background(), &it); err != nil {
		t.Fatal(err)
	}
}

func TestCustomServer(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "authority.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := NewAuthority(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(rest.NewHandler(svc, nil))
	defer srv.Close()

	phone := newDevice(t, srv.URL, "alice-token")
	laptop := newDevice(t, srv.URL, "alice-token")
	if err := phone.items.Insert(ctx, &Item{ID: "widget", Name: "Widget", Stock: 5}); err != nil {
		t.Fatal(err)
	}
	phone.sync(t)
	if st := laptop.sync(t); st.Pulled != 1 {
		t.Fatalf("laptop pulled %d", st.Pulled)
	}
	if it, _ := laptop.get(t, "widget"); it.Owner != "alice" || it.Stock != 5 {
		t.Fatalf("laptop has %+v; the scope sets owner to the caller", it)
	}

	// The laptop sells 3; the phone, offline on the old version, writes a
	// stock of -1. Its push conflicts, clientWins forces it, and the
	// authority's rule refuses it for good: a dead letter with the reason.
	laptop.setStock(t, "widget", 2)
	laptop.sync(t)
	phone.setStock(t, "widget", -1)
	sub := phone.eng.Subscribe(64)
	defer sub.Close()
	if _, err := phone.eng.Sync(ctx); err != nil {
		t.Fatalf("phone sync: %v", err)
	}
	var forced bool
	for len(sub.C) > 0 {
		if r, ok := (<-sub.C).(core.ConflictResolved); ok && r.Conflict.ID == "widget" && r.Resolution.Action == core.ActionAcceptClient {
			forced = true
		}
	}
	if !forced {
		t.Fatal("the conflict was not resolved by clientWins")
	}
	dead, err := phone.eng.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].ID != "widget" || !dead[0].Force || !strings.Contains(dead[0].LastError, "stock cannot go negative") {
		t.Fatalf("dead letters %+v, want the forced widget op refused for its stock", dead)
	}
	if rec, err := laptop.eng.Transport().(core.Getter).Get(ctx, "item", "widget"); err != nil || !strings.Contains(string(rec.Data), `"stock":2`) {
		t.Fatalf("authority has %s (%v), want stock 2", rec.Data, err)
	}

	// A valid forced update applies: the laptop restocks to 10 while the
	// phone, stale again, sets 4; clientWins forces 4 and the rule lets it in.
	if err := phone.eng.Drop(ctx, dead[0].OpID); err != nil {
		t.Fatal(err)
	}
	phone.sync(t)
	laptop.setStock(t, "widget", 10)
	laptop.sync(t)
	phone.setStock(t, "widget", 4)
	phone.sync(t)
	if dead, _ := phone.eng.DeadLetters(ctx); len(dead) != 0 {
		t.Fatalf("dead letters %+v", dead)
	}
	laptop.sync(t)
	if it, _ := laptop.get(t, "widget"); it.Stock != 4 {
		t.Fatalf("laptop has stock %d, want 4", it.Stock)
	}

	// Scope: bob sees none of alice's items, and alice none of his.
	bob := newDevice(t, srv.URL, "bob-token")
	if err := bob.items.Insert(ctx, &Item{ID: "gadget", Name: "Gadget", Stock: 1, Owner: "alice"}); err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	if _, ok := bob.get(t, "widget"); ok {
		t.Fatal("bob pulled alice's widget")
	}
	if it, _ := bob.get(t, "gadget"); it.Owner != "bob" {
		t.Fatalf("bob's gadget has owner %q, want bob (set by the scope)", it.Owner)
	}
	phone.sync(t)
	if _, ok := phone.get(t, "gadget"); ok {
		t.Fatal("alice pulled bob's gadget")
	}
	// Bob writing alice's id cannot reach her record.
	if err := bob.items.Insert(ctx, &Item{ID: "widget", Name: "Mine", Stock: 0}); err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	if it, _ := laptop.get(t, "widget"); it.Name != "Widget" || it.Stock != 4 {
		t.Fatalf("bob changed alice's widget: %+v", it)
	}
	// A wrong token is refused.
	mallory := newDevice(t, srv.URL, "mallory-token")
	if _, err := mallory.eng.Sync(ctx); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("unknown token: %v, want ErrUnauthorized", err)
	}
}

func TestValidate(t *testing.T) {
	ctx := context.Background()
	alice := core.Principal{ID: "alice"}
	for _, c := range []struct {
		payload string
		ok      bool
	}{
		{`{"name":"a","stock":0}`, true},
		{`{"name":"a","stock":7}`, true},
		{`{"name":"a"}`, true},
		{`{"name":"a","stock":-1}`, false},
		{`{"name":"a","stock":"many"}`, false},
	} {
		err := validate(ctx, alice, core.Op{Kind: "item", ID: "x", Type: core.OpUpsert, Force: true, Payload: []byte(c.payload)}, nil)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, core.ErrRejected)) {
			t.Fatalf("%s: %v", c.payload, err)
		}
	}
	if err := validate(ctx, alice, core.Op{Kind: "item", ID: "x", Type: core.OpDelete}, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
}
