package loadtest

import (
	"os"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	if p := Summarize(nil); p != (Percentiles{}) {
		t.Errorf("empty: %+v", p)
	}
	ds := make([]time.Duration, 1000)
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond // reversed: Summarize sorts
	}
	p := Summarize(ds)
	if p.N != 1000 || p.P50 != 501*time.Millisecond || p.P99 != 991*time.Millisecond || p.P999 != 1000*time.Millisecond || p.Max != time.Second {
		t.Errorf("1..1000 ms: %+v", p)
	}
}

func TestRSSKB(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		if RSSKB(os.Getpid()) != -1 {
			t.Error("an RSS without /proc")
		}
		return
	}
	if kb := RSSKB(os.Getpid()); kb <= 0 {
		t.Errorf("this process's RSS: %d kB", kb)
	}
	if kb := RSSKB(-5); kb != -1 {
		t.Errorf("no such process: %d", kb)
	}
}

func TestCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		if CPU(os.Getpid()) != -1 {
			t.Error("a CPU time without /proc")
		}
		return
	}
	before := CPU(os.Getpid())
	// Spin until the kernel has counted a tick more (bounded by the
	// test's timeout, not measured).
	for x := 0; CPU(os.Getpid()) <= before; x++ {
		_ = x * x
	}
	if CPU(-5) != -1 {
		t.Error("a CPU time for no process")
	}
}
