package plugins_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/plugins"
)

// benchConflicts are realistic inventory conflicts: base, local and server
// versions of a record with text, list and counter fields.
func benchConflicts(n int) []core.Conflict {
	cs := make([]core.Conflict, n)
	for i := range cs {
		id := fmt.Sprintf("sku-%06d", i)
		base := json.RawMessage(fmt.Sprintf(`{"name":"Item %d","description":"A fine item","quantity":%d,"reserved":2,"tags":["a","b"]}`, i, 100+i))
		local := json.RawMessage(fmt.Sprintf(`{"name":"Item %d","description":"A finer item","quantity":%d,"reserved":3,"tags":["a","b","c"]}`, i, 97+i))
		server := json.RawMessage(fmt.Sprintf(`{"name":"Item %d (new)","description":"A fine item","quantity":%d,"reserved":2,"tags":["b"]}`, i, 110+i))
		cs[i] = core.Conflict{
			Kind: "item", ID: id, Strategy: "plugin:inventory", DetectedAt: t0,
			Op: core.Op{OpID: "op-" + id, Kind: "item", ID: id, Type: core.OpUpsert, Payload: local,
				BaseUpdatedAt: t0, BasePayload: base, EditedAt: t0, EnqueuedAt: t0},
			Base:   &core.Record{Kind: "item", ID: id, UpdatedAt: t0, Data: base},
			Local:  &core.Record{Kind: "item", ID: id, UpdatedAt: t0, EditedAt: t0, Data: local},
			Server: &core.Record{Kind: "item", ID: id, UpdatedAt: t0.Add(time.Second), Data: server},
		}
	}
	return cs
}

// BenchmarkPluginResolve is one conflict per call into the inventory plugin.
func BenchmarkPluginResolve(b *testing.B) {
	p, cpu := benchPlugin(b)
	cs := benchConflicts(1000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu.start()
	for i := 0; b.Loop(); i++ {
		res, err := p.Resolve(ctx, cs[i%len(cs)])
		if err != nil || res.Action != core.ActionAcceptMerged {
			b.Fatalf("%+v, %v", res, err)
		}
	}
	cpu.report(b, b.N)
}

// BenchmarkPluginResolveBatch is batches of 1000 conflicts per call; one
// op of the benchmark is one batch.
func BenchmarkPluginResolveBatch(b *testing.B) {
	p, cpu := benchPlugin(b)
	cs := benchConflicts(1000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu.start()
	n := 0
	for b.Loop() {
		res, err := p.ResolveBatch(ctx, cs)
		if err != nil || len(res) != len(cs) || res[0].Action != core.ActionAcceptMerged {
			b.Fatalf("%d resolutions, %v", len(res), err)
		}
		n += len(cs)
	}
	cpu.report(b, n)
}

// cpuMeter measures the CPU time of the host and the plugin process, a
// figure that holds on a busy machine where conflicts/s does not.
type cpuMeter struct {
	pid        int
	host, plug time.Duration
}

func benchPlugin(b *testing.B) (*plugins.Plugin, *cpuMeter) {
	started := filepath.Join(b.TempDir(), "started")
	p := load(b, inventoryBin, &plugins.LoadOptions{Env: []string{"OFFSYNC_PLUGIN_STARTED=" + started}})
	return p, &cpuMeter{pid: starts(b, started)[0]}
}

func (m *cpuMeter) times() (host, plug time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		host = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// /proc/<pid>/stat: fields 14 and 15 are utime and stime in clock ticks
	// (100 per second on Linux).
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.pid)); err == nil {
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		plug = time.Duration(u+s) * 10 * time.Millisecond
	}
	return host, plug
}

func (m *cpuMeter) start() { m.host, m.plug = m.times() }

func (m *cpuMeter) report(b *testing.B, n int) {
	host, plug := m.times()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "conflicts/s")
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(n) }
	b.ReportMetric(us((host-m.host)+(plug-m.plug)), "cpu-us/conflict")
	b.ReportMetric(us(host-m.host), "host-cpu-us/conflict")
	b.ReportMetric(us(plug-m.plug), "plugin-cpu-us/conflict")
}
