package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// deferConflict edits note/n1 on the replica in dir through an engine whose
// strategy defers every conflict (what a manual strategy does), and syncs,
// so that the edit lands in the conflict inbox.
func deferConflict(t *testing.T, dir, url string) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "client.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	notes := core.Documents("note")
	tr := rest.NewClient(url, &rest.Options{Token: func(context.Context, bool) (string, error) { return testToken, nil }})
	deferAll := core.ResolverFunc(func(context.Context, core.Conflict) (core.Resolution, error) { return core.Defer, nil })
	eng, err := core.NewEngine(ctx, store, tr, &core.Options{
		Tables:    []core.Table{notes, core.Documents("task")},
		Conflicts: core.Conflicts{Kinds: map[string]core.Resolver{"note": core.Manual(deferAll)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := core.DocsFor(eng, notes).Put(ctx, "n1", map[string]any{"title": "from A"}); err != nil {
		t.Fatal(err)
	}
	st, err := eng.Sync(ctx)
	if err != nil || st.Conflicts != 1 {
		t.Fatalf("sync with a deferring strategy: %+v, %v", st, err)
	}
}

func TestConflicts(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	writeClientConfig(t, srv.URL, "")
	mustRun(t, 0, "local", "put", "note", "n1", `{"title":"v1"}`)
	mustRun(t, 0, "sync")
	out, _ := mustRun(t, 0, "conflicts", "list")
	if strings.TrimSpace(out) != "no conflicts" {
		t.Fatalf("empty inbox: %q", out)
	}

	// Replica B changes n1 on the server.
	dirB := t.TempDir()
	writeFile(t, dirB, "b.yaml", fmt.Sprintf("store: {dsn: b.db}\ntransport: {url: %s, token: \"${OFFSYNC_TEST_TOKEN}\"}\ntables: {note: {}}\n", srv.URL))
	for _, args := range [][]string{{"sync"}, {"local", "put", "note", "n1", `{"title":"from B"}`}, {"sync"}} {
		if o, e, code := runCLIIn(t, dirB, append(args, "-c", "b.yaml")...); code != 0 {
			t.Fatalf("replica B %v: %d\n%s%s", args, code, o, e)
		}
	}
	// Replica A edits the old version: a conflict, deferred to the inbox.
	deferConflict(t, workDir(t), srv.URL)

	js, _ := mustRun(t, 0, "conflicts", "list", "--json")
	var list []conflictJSON
	if err := json.Unmarshal([]byte(js), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Kind != "note" || list[0].ID != "n1" || list[0].Server == nil || list[0].Local == nil {
		t.Fatalf("inbox: %s", js)
	}
	op := list[0].OpID
	if !strings.Contains(string(list[0].Server.Data), "from B") || !strings.Contains(string(list[0].Local.Data), "from A") {
		t.Fatalf("versions: server %s, local %s", list[0].Server.Data, list[0].Local.Data)
	}
	out, _ = mustRun(t, 0, "conflicts", "list", "--kind", "note")
	if !strings.Contains(out, op) {
		t.Fatalf("text list lacks %s:\n%s", op, out)
	}
	out, _ = mustRun(t, 0, "conflicts", "show", op)
	for _, want := range []string{"note/n1", "from A", "from B", "server:", "local:"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	js, _ = mustRun(t, 0, "conflicts", "show", op, "--json")
	var one conflictJSON
	if err := json.Unmarshal([]byte(js), &one); err != nil || one.OpID != op {
		t.Fatalf("show --json: %v %s", err, js)
	}
	js, _ = mustRun(t, 0, "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil || rep.Conflicts != 1 {
		t.Fatalf("status with a conflict: %v %s", err, js)
	}

	// Usage mistakes: exit 2, the conflict stays.
	mustRun(t, 2, "conflicts", "resolve", op)
	mustRun(t, 2, "conflicts", "resolve", op, "--accept", "server", "--discard")
	mustRun(t, 2, "conflicts", "resolve", op, "--accept", "both")
	mustRun(t, 2, "conflicts", "resolve", op, "--accept", "merged")
	mustRun(t, 2, "conflicts", "resolve", op, "--accept", "merged", "--data", "[1]")
	mustRun(t, 2, "conflicts", "resolve", op, "--accept", "client", "--data", "{}")
	mustRun(t, 1, "conflicts", "show", "no-such-op")
	mustRun(t, 1, "conflicts", "resolve", "no-such-op", "--discard")

	out, _ = mustRun(t, 0, "conflicts", "resolve", op, "--accept", "merged", "--data", `{"title":"A and B"}`)
	if !strings.Contains(out, "accept merged") {
		t.Fatalf("resolve: %q", out)
	}
	mustRun(t, 0, "sync")
	out, _ = mustRun(t, 0, "conflicts", "list")
	if strings.TrimSpace(out) != "no conflicts" {
		t.Fatalf("after resolve and sync: %q", out)
	}
	out, _ = mustRun(t, 0, "local", "get", "note", "n1")
	if strings.TrimSpace(out) != `{"title":"A and B"}` {
		t.Fatalf("merged row: %q", out)
	}
	// The authority has the merged version: B pulls it.
	o, _, _ := runCLIIn(t, dirB, "sync", "-c", "b.yaml")
	got, _, _ := runCLIIn(t, dirB, "local", "get", "note", "n1", "-c", "b.yaml")
	if strings.TrimSpace(got) != `{"title":"A and B"}` {
		t.Fatalf("replica B after the merge: %q\n%s", got, o)
	}
}
