package transporttest

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
	"pgregory.net/rapid"
)

// ConvergenceCases is how many random cases TestConvergence runs when
// neither -rapid.checks nor RAPID_CHECKS says otherwise (-short divides it
// by five, as rapid does).
const ConvergenceCases = 200

// setChecks makes rapid run n cases unless the user chose a number.
func setChecks(n int) {
	if os.Getenv("RAPID_CHECKS") != "" {
		return
	}
	chosen := false
	flag.Visit(func(f *flag.Flag) { chosen = chosen || f.Name == "rapid.checks" })
	if f := flag.Lookup("rapid.checks"); f != nil && !chosen {
		_ = f.Value.Set(fmt.Sprint(n))
	}
}

// convergenceFaults are the faults a case may draw, each with a chance of
// 0 (off), 10% or 25% per call.
var convergenceFaults = []struct {
	name string
	rule faults.Rule
	http bool // only for a client claiming Features.HTTP
	conn bool // only for a client claiming Features.Conn
}{
	{"push-drop-request", faults.Rule{Fault: faults.DropRequest, Method: faults.Push}, false, false},
	{"push-drop-answer", faults.Rule{Fault: faults.DropAnswer, Method: faults.Push}, false, false},
	{"push-duplicate", faults.Rule{Fault: faults.Duplicate, Method: faults.Push}, false, false},
	{"pull-drop-request", faults.Rule{Fault: faults.DropRequest, Method: faults.Pull}, false, false},
	{"pull-cut-page", faults.Rule{Fault: faults.CutPage, Method: faults.Pull}, false, false},
	{"pull-short-page", faults.Rule{Fault: faults.ShortPage, Method: faults.Pull, Keep: -1}, false, false},
	{"http-drop-request", faults.Rule{Fault: faults.DropRequest, Method: faults.HTTP}, true, false},
	{"http-drop-answer", faults.Rule{Fault: faults.DropAnswer, Method: faults.HTTP}, true, false},
	{"http-duplicate", faults.Rule{Fault: faults.Duplicate, Method: faults.HTTP}, true, false},
	{"http-cut-body", faults.Rule{Fault: faults.CutBody, Method: faults.HTTP, Keep: -1}, true, false},
	{"conn-drop-request", faults.Rule{Fault: faults.DropRequest, Method: faults.Conn}, false, true},
	{"conn-drop-answer", faults.Rule{Fault: faults.DropAnswer, Method: faults.Conn}, false, true},
	{"conn-cut-write", faults.Rule{Fault: faults.CutBody, Method: faults.Conn, Keep: -1}, false, true},
}

// switchRT sends through the HTTP fault wrapper of the current case.
type switchRT struct {
	inner http.RoundTripper
	cur   *atomic.Pointer[faults.Injector]
}

func (s switchRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if inj := s.cur.Load(); inj != nil {
		return faults.WrapHTTP(s.inner, inj).RoundTrip(r)
	}
	if s.inner == nil {
		return http.DefaultTransport.RoundTrip(r)
	}
	return s.inner.RoundTrip(r)
}

// TestConvergence is a property test: three replicas make at least 20 random
// creates, updates and deletes on a few shared records, with random syncs,
// under random faults at the core.Transport level (and the HTTP level for
// an HTTP client), and the authority collects every tombstone at random
// points between them (its retention is an hour; its clock jumps two), so
// a replica that has not pulled since is reset_required, and a first walk
// or a resync runs while records it holds are deleted and collected. Then
// faults stop and the replicas sync until quiet. Every replica must equal
// the authority (a tombstone the authority collected after the replica
// pulled it may stay there), no write may be applied twice (the
// authority counts applies in the write's own transaction), and the last
// write of each replica to each record must have been applied exactly once
// (a write committed locally is never lost). Each case syncs a fresh kind
// over the same stores, which keeps a case cheap; the count of each fault
// injected over all cases is logged.
func TestConvergence(t *testing.T, h Harness) {
	setChecks(ConvergenceCases)
	ctx := t.Context()
	authStore := h.NewStore(t)
	authClock := core.NewManualClock(t0) // moved by the random tombstone collections
	svc, err := server.New(ctx, authStore, &server.Options{
		Tables:             []core.Table{applied},
		DynamicKinds:       regexp.MustCompile(`^cv[0-9]+$`),
		Validate:           logApplied(authStore),
		Clock:              authClock,
		TombstoneRetention: time.Hour,
	})
	if err != nil {
		t.Fatalf("server.New over the harness store: %v", err)
	}
	t.Cleanup(func() { svc.Close() })

	var cur atomic.Pointer[faults.Injector]
	conns := faults.NewConns(nil) // draws from the case's injector
	const nrep = 3
	stores := make([]core.Store, nrep)
	clients := make([]core.Transport, nrep)
	for i := range nrep {
		stores[i] = h.NewStore(t)
		o := ClientOptions{}
		if h.Features().HTTP {
			o.WrapHTTP = func(rt http.RoundTripper) http.RoundTripper { return switchRT{rt, &cur} }
		}
		if h.Features().Conn {
			o.WrapConn = conns.Wrap
		}
		clients[i] = h.NewClient(t, svc, o)
	}

	var cases, writes, syncs, collections int
	injected := map[string]int64{}
	rapid.Check(t, func(rt *rapid.T) {
		cases++
		kind := fmt.Sprintf("cv%d", cases)
		table := core.Documents(kind)
		var rules []faults.Rule
		for _, f := range convergenceFaults {
			if (f.http && !h.Features().HTTP) || (f.conn && !h.Features().Conn) {
				continue
			}
			chance := rapid.SampledFrom([]float64{0, 0.1, 0.25}).Draw(rt, f.name)
			if chance == 0 {
				continue // a Rule's zero Chance means always
			}
			r := f.rule
			r.Chance = chance
			rules = append(rules, r)
		}
		inj, err := faults.New(faults.Options{Seed: rapid.Uint64().Draw(rt, "seed"), Rules: rules})
		if err != nil {
			rt.Fatalf("faults: %v", err)
		}
		cur.Store(inj)
		conns.SetInjector(inj)
		defer cur.Store(nil)
		defer conns.SetInjector(nil)
		defer func() {
			for f, n := range inj.Stats().Injected {
				injected[f.String()] += n
			}
		}()

		clock := core.NewManualClock(t0)
		engines := make([]*core.Engine, nrep)
		docs := make([]*core.DocWriter, nrep)
		for i := range nrep {
			eng, err := core.NewEngine(ctx, stores[i], faults.Wrap(clients[i], inj), &core.Options{
				Tables:    []core.Table{table},
				Clock:     clock,
				PageSize:  rapid.IntRange(2, 6).Draw(rt, "pageSize"),
				BatchSize: rapid.IntRange(1, 8).Draw(rt, "batchSize"),
			})
			if err != nil {
				rt.Fatalf("NewEngine: %v", err)
			}
			defer eng.Close()
			engines[i], docs[i] = eng, core.DocsFor(eng, table)
		}

		ids := []string{"a", "b", "c", "d", "e"}
		last := make([]map[string]string, nrep) // the last write of each replica to each record ("" = a delete)
		for i := range last {
			last[i] = map[string]string{}
		}
		n := rapid.IntRange(20, 24).Draw(rt, "writes")
		for w := 0; w < n; {
			if rapid.IntRange(0, 9).Draw(rt, "collect") == 0 {
				// Every tombstone so far passes the retention and is
				// collected: a replica that has not pulled since is reset.
				collections++
				authClock.Advance(2 * time.Hour)
				if _, err := svc.Collect(ctx, kind); err != nil {
					rt.Fatalf("collect: %v", err)
				}
			}
			r := rapid.IntRange(0, nrep-1).Draw(rt, "replica")
			act := rapid.IntRange(0, 9).Draw(rt, "action")
			if act < 3 {
				syncs++
				clock.Advance(2 * time.Second)
				_, _ = engines[r].Sync(ctx) // faults make syncs fail; the end checks what matters
				continue
			}
			id := rapid.SampledFrom(ids).Draw(rt, "id")
			rec, err := engines[r].Get(ctx, kind, id)
			live := err == nil && !rec.Deleted()
			if act == 3 && live {
				if err := docs[r].Delete(ctx, id); err != nil {
					rt.Fatalf("replica %d: delete %s: %v", r, id, err)
				}
				last[r][id] = ""
				w++
				continue
			}
			data := map[string]any{}
			if live {
				data = fieldsOf(t, rec)
			}
			field := rapid.SampledFrom([]string{"x", "y", "z"}).Draw(rt, "field")
			wid := fmt.Sprintf("%s-r%d-%d", kind, r, w)
			data[field] = rapid.IntRange(0, 9).Draw(rt, "value")
			data["w"] = wid
			if err := docs[r].Put(ctx, id, data, core.Changed(field, "w")); err != nil {
				rt.Fatalf("replica %d: put %s: %v", r, id, err)
			}
			last[r][id] = wid
			w++
		}
		writes += n

		// Faults stop; the replicas sync until a whole round is clean.
		inj.SetEnabled(false)
		quiet := false
		var lastErr error
		for round := 0; round < 12 && !quiet; round++ {
			quiet = true
			for i := range nrep {
				clock.Advance(10 * time.Minute)
				st, err := engines[i].Sync(ctx)
				if err != nil {
					quiet, lastErr = false, err
				}
				if st.Pushed > 0 || st.Conflicts > 0 {
					quiet = false // the others have not pulled it yet
				}
				if pending(ctx, engines[i], kind) > 0 {
					quiet = false
				}
			}
		}
		if !quiet {
			var stuck []string
			for i := range nrep {
				counts, _ := engines[i].Pending(ctx)
				stuck = append(stuck, fmt.Sprintf("replica %d: %v", i, counts))
				dead, _ := engines[i].DeadLetters(ctx)
				for _, op := range dead {
					stuck = append(stuck, fmt.Sprintf("replica %d dead op %s %s/%s: %s", i, op.Type, op.Kind, op.ID, op.LastError))
				}
			}
			rt.Fatalf("the replicas did not settle once faults stopped (last error %v): %s", lastErr, strings.Join(stuck, "; "))
		}
		want := listStore(rt, authStore, kind)
		for i := range nrep {
			got, err := engines[i].List(ctx, kind, core.ListOptions{IncludeDeleted: true})
			if err != nil {
				rt.Fatalf("replica %d: list: %v", i, err)
			}
			got = withoutCollected(rt, authStore, kind, got, want)
			if d := sameRecords(got, want); d != "" {
				rt.Fatalf("replica %d differs from the authority (replica vs authority): %s", i, d)
			}
		}
		counts := appliedCounts(rt, authStore, kind)
		var twice []string
		for k, c := range counts {
			if c != 1 {
				twice = append(twice, fmt.Sprintf("%s ×%d", k, c))
			}
		}
		if len(twice) > 0 {
			sort.Strings(twice)
			rt.Fatalf("writes applied more than once at the authority: %s", strings.Join(twice, ", "))
		}
		for i := range nrep {
			for id, wid := range last[i] {
				if wid != "" && counts["w:"+wid] != 1 {
					rt.Fatalf("replica %d's last write to %s (%s) was committed locally but never applied at the authority: lost", i, id, wid)
				}
			}
		}
	})
	var parts []string
	for f, n := range injected {
		parts = append(parts, fmt.Sprintf("%s=%d", f, n))
	}
	sort.Strings(parts)
	t.Logf("%d cases, %d writes, %d random syncs, %d tombstone collections; faults injected: %s", cases, writes, syncs, collections, strings.Join(parts, " "))
}

// withoutCollected drops from a replica's rows the tombstones the
// authority has collected since the replica pulled them (deleted, gone from
// the authority, no newer than the kind's horizon): a replica that synced
// within the retention keeps them, and they hide nothing.
func withoutCollected(t fataler, auth core.Store, kind string, got, want []core.Record) []core.Record {
	t.Helper()
	var horizon time.Time
	err := auth.View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		tt, ok := tx.(core.TombstoneTx)
		if !ok {
			return fmt.Errorf("the authority's store cannot collect tombstones")
		}
		var err error
		horizon, err = tt.Horizon(ctx, kind)
		return err
	})
	if err != nil {
		t.Fatalf("the authority's horizon of %s: %v", kind, err)
	}
	at := map[string]bool{}
	for _, r := range want {
		at[r.ID] = true
	}
	out := got[:0:0]
	for _, r := range got {
		if r.Deleted() && !at[r.ID] && !r.UpdatedAt.After(horizon) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// pending counts the ops of kind in e's outbox (a failed case leaves its
// ops behind in the shared stores).
func pending(ctx context.Context, e *core.Engine, kind string) int {
	counts, err := e.Pending(ctx)
	if err != nil {
		return 1
	}
	n := 0
	for _, c := range counts {
		if c.Kind == kind {
			n += c.Count
		}
	}
	return n
}
