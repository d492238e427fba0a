package plugins_test

import (
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/plugins"
)

// Two replicas edit the same items offline; the second to sync resolves the
// conflicts through the inventory plugin, end to end through the authority.
func TestInventoryPluginEndToEnd(t *testing.T) {
	svc := newAuthority(t)
	p := load(t, inventoryBin, &plugins.LoadOptions{SHA256: sha256File(t, inventoryBin)})
	a := newReplica(t, "a", svc, p)
	b := newReplica(t, "b", svc, p)

	a.put(t, "widget", map[string]any{"name": "Widget", "description": "A widget", "quantity": 10, "reserved": 1, "tags": []any{"metal"}})
	a.put(t, "gadget", map[string]any{"name": "Gadget", "description": "A gadget", "quantity": 5, "reserved": 0})
	a.sync(t)
	b.sync(t)

	// A sells 3 widgets and 1 gadget and rewrites a description; B books a
	// delivery of 2 widgets, renames the widget and tags it.
	a.put(t, "widget", map[string]any{"name": "Widget", "description": "A steel widget", "quantity": 7, "reserved": 1, "tags": []any{"metal"}})
	a.put(t, "gadget", map[string]any{"name": "Gadget", "description": "A gadget", "quantity": 4, "reserved": 0})
	a.sync(t)
	b.put(t, "widget", map[string]any{"name": "Widget Pro", "description": "A widget", "quantity": 12, "reserved": 2, "tags": []any{"metal", "new"}})
	b.put(t, "gadget", map[string]any{"name": "Gadget", "description": "A gadget", "quantity": 8, "reserved": 0})
	b.events()
	st := b.sync(t)
	if st.Conflicts != 2 || st.Resolved != 2 || st.Errors != 0 {
		t.Fatalf("stats = %+v, want 2 conflicts resolved", st)
	}
	if ops := b.ops(t); len(ops) != 0 {
		t.Fatalf("outbox after resolution: %+v", ops)
	}
	a.sync(t)

	for _, side := range []map[string]any{authItem(t, svc, "widget"), a.get(t, "widget"), b.get(t, "widget")} {
		// quantity 7 + (12 - 10); reserved 1 + (2 - 1); texts merged.
		if num(side["quantity"]) != "9" || num(side["reserved"]) != "2" || side["name"] != "Widget Pro" ||
			side["description"] != "A steel widget" || num(side["tags"]) != "[metal new]" {
			t.Fatalf("widget = %v", side)
		}
	}
	for _, side := range []map[string]any{authItem(t, svc, "gadget"), a.get(t, "gadget"), b.get(t, "gadget")} {
		if num(side["quantity"]) != "7" { // 4 + (8 - 5)
			t.Fatalf("gadget = %v", side)
		}
	}
	resolved := 0
	for _, ev := range b.events() {
		if cr, ok := ev.(core.ConflictResolved); ok {
			resolved++
			if cr.Conflict.Strategy != "plugin:inventory" || cr.Resolution.Action != core.ActionAcceptMerged {
				t.Fatalf("resolved by %q with %v", cr.Conflict.Strategy, cr.Resolution.Action)
			}
		}
	}
	if resolved != 2 {
		t.Fatalf("%d ConflictResolved events, want 2", resolved)
	}
}

// A merge that would oversell is refused: the server's stock stands.
func TestInventoryPluginRefusesOversell(t *testing.T) {
	svc := newAuthority(t)
	p := load(t, inventoryBin, nil)
	a := newReplica(t, "a", svc, p)
	b := newReplica(t, "b", svc, p)

	a.put(t, "lamp", map[string]any{"name": "Lamp", "quantity": 5})
	a.sync(t)
	b.sync(t)
	a.put(t, "lamp", map[string]any{"name": "Lamp", "quantity": 1}) // sold 4
	a.sync(t)
	b.put(t, "lamp", map[string]any{"name": "Lamp", "quantity": 2}) // sold 3 offline: 1 + (2 - 5) < 0
	st := b.sync(t)
	if st.Conflicts != 1 || st.Resolved != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if got := num(authItem(t, svc, "lamp")["quantity"]); got != "1" {
		t.Fatalf("authority quantity = %s, want 1", got)
	}
	if got := num(b.get(t, "lamp")["quantity"]); got != "1" {
		t.Fatalf("replica quantity = %s, want the server's 1", got)
	}
	if ops := b.ops(t); len(ops) != 0 {
		t.Fatalf("outbox: %+v", ops)
	}
	var action core.Action
	for _, ev := range b.events() {
		if cr, ok := ev.(core.ConflictResolved); ok {
			action = cr.Resolution.Action
		}
	}
	if action != core.ActionAcceptServer {
		t.Fatalf("resolution = %v, want accept_server", action)
	}
}
