package plugins_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/plugins"
)

func conflictFor(id string) core.Conflict {
	return core.Conflict{
		Kind: "item", ID: id,
		Op: core.Op{OpID: "op-" + id, Kind: "item", ID: id, Type: core.OpUpsert,
			Payload: json.RawMessage(`{"name":"local","quantity":3}`), BaseUpdatedAt: t0,
			BasePayload: json.RawMessage(`{"name":"base","quantity":5}`)},
		Base:   &core.Record{Kind: "item", ID: id, UpdatedAt: t0, Data: json.RawMessage(`{"name":"base","quantity":5}`)},
		Local:  &core.Record{Kind: "item", ID: id, UpdatedAt: t0, Data: json.RawMessage(`{"name":"local","quantity":3}`)},
		Server: &core.Record{Kind: "item", ID: id, UpdatedAt: t0.Add(time.Second), Data: json.RawMessage(`{"name":"base","quantity":9}`)},
	}
}

func TestChecksumMismatchRefusedBeforeRun(t *testing.T) {
	started := filepath.Join(t.TempDir(), "started")
	env := []string{"OFFSYNC_PLUGIN_STARTED=" + started}
	wrong := strings.Repeat("ab", 32)
	actual := sha256File(t, inventoryBin)

	_, _, err := plugins.Load(context.Background(), inventoryBin, &plugins.LoadOptions{SHA256: wrong, Env: env, Logger: quiet})
	if !errors.Is(err, plugins.ErrChecksumMismatch) || !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	if !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), actual) {
		t.Fatalf("error %q does not name the expected %s and actual %s hashes", err, wrong, actual)
	}
	if pids := starts(t, started); len(pids) != 0 {
		t.Fatalf("the refused binary ran: %v", pids)
	}

	// Negative control: the right checksum runs the same binary.
	p := load(t, inventoryBin, &plugins.LoadOptions{SHA256: strings.ToUpper(actual), Env: env})
	if pids := starts(t, started); len(pids) != 1 {
		t.Fatalf("starts = %v, want one", pids)
	}
	if _, err := p.Resolve(context.Background(), conflictFor("x")); err != nil {
		t.Fatal(err)
	}

	// A pin that is not a SHA-256 is bad input.
	_, _, err = plugins.Load(context.Background(), inventoryBin, &plugins.LoadOptions{SHA256: "abc", Logger: quiet})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("bad pin: err = %v, want ErrInvalid", err)
	}
}

// The plugin is killed inside Resolve during a Sync: the op stays in the
// outbox untouched, an error event names the plugin, the other ops go on,
// and the next sync starts the plugin again and resolves the conflict.
func TestPluginKilledMidResolveLosesNothing(t *testing.T) {
	dir := t.TempDir()
	block := filepath.Join(dir, "block")
	started := filepath.Join(dir, "started")
	pidFile := fifo(t, "pid")
	svc := newAuthority(t)
	p := load(t, inventoryBin, &plugins.LoadOptions{Env: []string{
		"OFFSYNC_PLUGIN_BLOCK=" + block, "OFFSYNC_PLUGIN_PIDFILE=" + pidFile, "OFFSYNC_PLUGIN_STARTED=" + started}})
	a := newReplica(t, "a", svc, core.AutoPreserve)
	b := newReplica(t, "b", svc, p)

	a.put(t, "chair", map[string]any{"name": "Chair", "quantity": 10})
	a.sync(t)
	b.sync(t)
	a.put(t, "chair", map[string]any{"name": "Chair", "quantity": 8})
	a.sync(t)
	b.put(t, "chair", map[string]any{"name": "Oak chair", "quantity": 15})
	b.put(t, "table", map[string]any{"name": "Table", "quantity": 1}) // no conflict
	before := b.ops(t)

	if err := os.WriteFile(block, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b.events()
	done := make(chan core.Stats, 1)
	go func() {
		st, _ := b.eng.Sync(context.Background())
		done <- st
	}()
	pid := readPID(t, pidFile) // the plugin is inside Resolve now
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := <-done
	if st.Conflicts != 1 || st.Resolved != 0 || st.Errors == 0 {
		t.Fatalf("stats = %+v", st)
	}
	var resolverErr error
	for _, ev := range b.events() {
		if se, ok := ev.(core.SyncError); ok && se.Category == core.CategoryResolver {
			resolverErr = se.Err
		}
	}
	if !errors.Is(resolverErr, plugins.ErrPlugin) || !strings.Contains(resolverErr.Error(), "plugin:inventory") {
		t.Fatalf("resolver error event = %v", resolverErr)
	}
	after := b.ops(t)
	if len(after) != 1 || after[0].OpID != before[0].OpID || string(after[0].Payload) != string(before[0].Payload) ||
		!after[0].BaseUpdatedAt.Equal(before[0].BaseUpdatedAt) || after[0].State != core.StatePending {
		t.Fatalf("outbox after the crash = %+v, before = %+v", after, before)
	}
	if got := authItem(t, svc, "table")["name"]; got != "Table" {
		t.Fatalf("the other op did not go on: %v", got)
	}

	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	st = b.sync(t)
	if st.Resolved != 1 || st.Errors != 0 {
		t.Fatalf("second sync stats = %+v", st)
	}
	if got := authItem(t, svc, "chair"); num(got["quantity"]) != "13" || got["name"] != "Oak chair" { // 8 + (15 - 10)
		t.Fatalf("chair = %v", got)
	}
	if ops := b.ops(t); len(ops) != 0 {
		t.Fatalf("outbox: %+v", ops)
	}
	if pids := starts(t, started); len(pids) != 2 || pids[0] != pid || alive(pid) {
		t.Fatalf("starts = %v (killed %d)", pids, pid)
	}
}

// A plugin that does not answer within the call timeout is stopped; the
// next call starts it again.
func TestPluginHangTimesOut(t *testing.T) {
	dir := t.TempDir()
	block := filepath.Join(dir, "block")
	started := filepath.Join(dir, "started")
	p := load(t, inventoryBin, &plugins.LoadOptions{CallTimeout: 100 * time.Millisecond,
		Env: []string{"OFFSYNC_PLUGIN_BLOCK=" + block, "OFFSYNC_PLUGIN_STARTED=" + started}})
	if err := os.WriteFile(block, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := p.Resolve(context.Background(), conflictFor("x"))
	if !errors.Is(err, plugins.ErrPlugin) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a call timeout", err)
	}
	first := starts(t, started)
	if len(first) != 1 || alive(first[0]) {
		t.Fatalf("the hung plugin %v was not stopped", first)
	}
	os.Remove(block)
	res, err := p.Resolve(context.Background(), conflictFor("x"))
	if err != nil || res.Action != core.ActionAcceptMerged || num(res.Data["quantity"]) != "7" {
		t.Fatalf("after restart: %+v, %v", res, err)
	}
	if pids := starts(t, started); len(pids) != 2 {
		t.Fatalf("starts = %v", pids)
	}
}

// The caller's cancellation reaches the resolver inside the plugin, and the
// plugin lives on.
func TestCallerContextReachesPlugin(t *testing.T) {
	pidFile, ctxFile := fifo(t, "pid"), fifo(t, "ctx")
	p := load(t, testpluginBin, &plugins.LoadOptions{Env: []string{
		"TESTPLUGIN_PIDFILE=" + pidFile, "TESTPLUGIN_CTXFILE=" + ctxFile}})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Resolve(ctx, conflictFor("block"))
		errc <- err
	}()
	pid := readPID(t, pidFile)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || !errors.Is(err, plugins.ErrPlugin) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	seen, err := os.ReadFile(ctxFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(seen) != context.Canceled.Error() {
		t.Fatalf("the plugin saw %q", seen)
	}
	if _, err := p.Resolve(context.Background(), conflictFor("ok")); err != nil || !alive(pid) {
		t.Fatalf("after a cancelled call: %v (pid %d alive %v)", err, pid, alive(pid))
	}
}

func TestPluginFailuresNameThePlugin(t *testing.T) {
	ctx := context.Background()
	logs := &syncBuffer{}
	p := load(t, testpluginBin, &plugins.LoadOptions{Logger: slogTo(logs)})
	for _, tc := range []struct {
		id       string
		sentinel error
	}{
		{"garbage", core.ErrInvalid},
		{"error", core.ErrRejected},
		{"panic", nil},
		{"exit", core.ErrUnavailable},
	} {
		_, err := p.Resolve(ctx, conflictFor(tc.id))
		if !errors.Is(err, plugins.ErrPlugin) || !strings.Contains(err.Error(), "plugin:testplugin") {
			t.Fatalf("%s: err = %v", tc.id, err)
		}
		if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
			t.Fatalf("%s: err = %v, want %v", tc.id, err, tc.sentinel)
		}
		// Every failure leaves a working plugin for the next call (after an
		// exit, a new process).
		res, err := p.Resolve(ctx, conflictFor("ok"))
		if err != nil || res.Data["resolved_by"] != "testplugin" || res.Data["name"] != "local" {
			t.Fatalf("after %s: %+v, %v", tc.id, res, err)
		}
	}

	// The batch path through a resolver that does not batch itself: Serve
	// loops, the host splits by the plugin's limit of 3, order is kept.
	cs := make([]core.Conflict, 8)
	for i := range cs {
		cs[i] = conflictFor("ok")
		cs[i].Local = &core.Record{Kind: "item", ID: "ok", Data: json.RawMessage(`{"n":` + string(rune('0'+i)) + `}`)}
	}
	res, err := p.ResolveBatch(ctx, cs)
	if err != nil || len(res) != len(cs) {
		t.Fatalf("batch: %d resolutions, %v", len(res), err)
	}
	for i, r := range res {
		if num(r.Data["n"]) != string(rune('0'+i)) {
			t.Fatalf("resolution %d = %v", i, r.Data)
		}
	}
	cs[5] = conflictFor("garbage")
	if _, err := p.ResolveBatch(ctx, cs); !errors.Is(err, core.ErrInvalid) || !errors.Is(err, plugins.ErrPlugin) {
		t.Fatalf("batch with garbage: %v", err)
	}

	// The plugin's stderr reached the host's logger.
	p.Close()
	if !strings.Contains(logs.String(), "testplugin: started") {
		t.Fatalf("plugin stderr not in the host log:\n%s", logs)
	}
	if _, err := p.Resolve(ctx, conflictFor("ok")); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestLoadRefusesWhatIsNotAPlugin(t *testing.T) {
	ctx := context.Background()
	script := filepath.Join(t.TempDir(), "not-a-plugin")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path string
		opts plugins.LoadOptions
		want error
	}{
		"not a plugin":   {script, plugins.LoadOptions{}, plugins.ErrPlugin},
		"other protocol": {testpluginBin, plugins.LoadOptions{Env: []string{"TESTPLUGIN_PROTOCOL=2"}}, plugins.ErrPlugin},
		"missing binary": {filepath.Join(t.TempDir(), "nope"), plugins.LoadOptions{}, core.ErrInvalid},
		"directory":      {t.TempDir(), plugins.LoadOptions{}, core.ErrInvalid},
		"empty path":     {"", plugins.LoadOptions{}, core.ErrInvalid},
	} {
		tc.opts.Logger = quiet
		r, c, err := plugins.Load(ctx, tc.path, &tc.opts)
		if !errors.Is(err, tc.want) || r != nil || c != nil {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestCloseStopsThePlugin(t *testing.T) {
	started := filepath.Join(t.TempDir(), "started")
	p := load(t, inventoryBin, &plugins.LoadOptions{Env: []string{"OFFSYNC_PLUGIN_STARTED=" + started}})
	pids := starts(t, started)
	if len(pids) != 1 || !alive(pids[0]) {
		t.Fatalf("starts = %v", pids)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(pids[0]) {
		t.Fatalf("plugin %d still running after Close", pids[0])
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestResolverDriver(t *testing.T) {
	ctx := context.Background()
	r, err := core.OpenResolver(ctx, "plugin", map[string]any{
		"path": inventoryBin, "sha256": sha256File(t, inventoryBin), "timeout": "5s", "start_timeout": 10})
	if err != nil {
		t.Fatal(err)
	}
	defer r.(interface{ Close() error }).Close()
	if core.StrategyName(r) != "plugin:inventory" {
		t.Fatalf("name = %q", core.StrategyName(r))
	}
	if _, ok := r.(core.BatchResolver); !ok {
		t.Fatal("the plugin resolver does not batch")
	}
	res, err := r.Resolve(ctx, conflictFor("x"))
	if err != nil || num(res.Data["quantity"]) != "7" {
		t.Fatalf("%+v, %v", res, err)
	}
	for name, opts := range map[string]map[string]any{
		"no path":        {},
		"unknown option": {"path": inventoryBin, "sha": "x"},
		"bad timeout":    {"path": inventoryBin, "timeout": "soon"},
		"zero timeout":   {"path": inventoryBin, "timeout": 0},
		"path type":      {"path": 3},
	} {
		if _, err := core.OpenResolver(ctx, "plugin", opts); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
