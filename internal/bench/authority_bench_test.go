package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// The authority's share of `offsync bench`'s push and pull, in process and
// without a wire: what the server does per pushed op and per pulled record
// on a durable SQLite file (synchronous FULL, as the bench's authority).
// Besides ns/op they report cpu-µs/op, the user+sys time of the whole
// process (getrusage) per op or record, which moves less than wall time on
// a shared machine, and the allocations per op or record.
//
//	go test ./internal/bench -run '^$' -bench Authority -benchtime 3x -count 3

const (
	authPushOps   = 10_000 // ops pushed per iteration, as the bench's push
	authBatch     = 500    // ops per push, as the engine's default batch
	authPullRows  = 20_000 // rows walked per iteration of the pull
	authPullLimit = 500    // records per page
)

// procIO returns the process's write syscalls and bytes written so far
// (/proc/self/io: syscw, wchar); zeros where there is no such file.
func procIO() (calls, bytes int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch name {
		case "syscw":
			calls = n
		case "wchar":
			bytes = n
		}
	}
	return calls, bytes
}

// procCPU is the process's user+sys time so far.
func procCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchAuthority(b *testing.B) (*server.Service, *sqlite.Store) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "auth.db"), &sqlite.Options{Synchronous: "FULL"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	svc, err := server.New(ctx, st, &server.Options{Tables: []core.Table{Items, Tasks}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	return svc, st
}

// itemOps returns the ops creating items [first, first+n): with op ids as
// the engine makes them (core.NewOpID) when rng is nil, else 32 random hex
// digits drawn from rng (the engine's ids before they began with the time).
func itemOps(b *testing.B, rng *rand.Rand, first, n int) []core.Op {
	ops := make([]core.Op, n)
	for j := range ops {
		rec, err := Items.Record(NewItem(first + j))
		if err != nil {
			b.Fatal(err)
		}
		id := core.NewOpID()
		if rng != nil {
			id = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		}
		ops[j] = core.Op{OpID: id, Kind: Items.Kind(), ID: rec.ID, Type: core.OpUpsert, Payload: rec.Data}
	}
	return ops
}

// BenchmarkAuthorityPush pushes 10,000 new items in batches of 500 to a
// fresh authority per iteration (each op has an op id, so its idempotency
// record is written too): ids=engine with op ids as the engine makes them,
// ids=random with 32 random hex digits (where each idempotency record lands
// at a random place of its index).
func BenchmarkAuthorityPush(b *testing.B) {
	b.Run("ids=engine", func(b *testing.B) { benchAuthorityPush(b, false) })
	b.Run("ids=random", func(b *testing.B) { benchAuthorityPush(b, true) })
}

func benchAuthorityPush(b *testing.B, randomIDs bool) {
	ctx := context.Background()
	var cpu time.Duration
	var writes, written int64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		svc, _ := benchAuthority(b)
		var rng *rand.Rand
		if randomIDs {
			rng = rand.New(rand.NewPCG(1, 2))
		}
		batches := make([][]core.Op, 0, authPushOps/authBatch)
		for first := 0; first < authPushOps; first += authBatch {
			batches = append(batches, itemOps(b, rng, first, authBatch))
		}
		c0 := procCPU(b)
		w0, wb0 := procIO()
		b.StartTimer()
		for _, ops := range batches {
			res, err := svc.Push(ctx, ops)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Status != core.StatusApplied {
					b.Fatalf("op %s: %v %s", r.OpID, r.Status, r.Reason)
				}
			}
		}
		b.StopTimer()
		cpu += procCPU(b) - c0
		w1, wb1 := procIO()
		writes, written = writes+w1-w0, written+wb1-wb0
		b.StartTimer()
	}
	ops := float64(b.N * authPushOps)
	b.ReportMetric(ops/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(cpu.Microseconds())/ops, "cpu-µs/op")
	b.ReportMetric(float64(writes)/ops, "writes/op")
	b.ReportMetric(float64(written)/ops, "written-B/op")
}

// BenchmarkAuthorityPull walks the feed of 20,000 items in pages of 500
// with page tokens, as a replica's first pull does.
func BenchmarkAuthorityPull(b *testing.B) {
	ctx := context.Background()
	svc, st := benchAuthority(b)
	if err := SeedStore(ctx, st, authPullRows); err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c0 := procCPU(b)
		n, token := 0, ""
		for {
			page, err := svc.Pull(ctx, core.PullRequest{Kind: Items.Kind(), Limit: authPullLimit, PageToken: token})
			if err != nil {
				b.Fatal(err)
			}
			n += len(page.Records)
			if page.NextPageToken == "" {
				break
			}
			token = page.NextPageToken
		}
		if n != authPullRows {
			b.Fatalf("pulled %d records, want %d", n, authPullRows)
		}
		cpu += procCPU(b) - c0
	}
	recs := float64(b.N * authPullRows)
	b.ReportMetric(recs/b.Elapsed().Seconds(), "rec/s")
	b.ReportMetric(float64(cpu.Microseconds())/recs, "cpu-µs/rec")
}
