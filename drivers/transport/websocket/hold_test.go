package websocket_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/websocket"
	"github.com/offsync/offsync/internal/loadtest"
	"github.com/offsync/offsync/server"
)

// The hold test: many sockets, each subscribed, held open against one
// server process, then one write whose notice every socket must see. It
// reports the server's RSS per socket and the notice latency p50/p99 (from
// just before the write is sent to each socket's notice).
// CI runs 50 sockets for a second; the full run is
//
//	OFFSYNC_WS_HOLD_SOCKETS=1000 OFFSYNC_WS_HOLD_SECONDS=30 go test -run TestHoldSockets -v -timeout 10m ./drivers/transport/websocket
const holdChildEnv = "OFFSYNC_WS_HOLD_CHILD"

// TestHoldServerProcess is the server of TestHoldSockets when the test
// binary is re-run as its child; otherwise it returns at once.
func TestHoldServerProcess(t *testing.T) {
	if !loadtest.InChild(holdChildEnv) {
		return
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "authority.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := server.New(ctx, st, &server.Options{Tables: []core.Table{core.Documents(todo)}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	half, err := server.OpenServer(ctx, "websocket", svc, server.TransportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mux, _ := server.NewHTTPMux(map[string]http.Handler{"/ws": half.(server.HTTPTransport)})
	srv := httptest.NewServer(mux)
	loadtest.Announce(srv.Listener.Addr().String())
	loadtest.AwaitParent()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = half.Shutdown(sctx)
	srv.Close()
}

func TestHoldSockets(t *testing.T) {
	if loadtest.InChild(holdChildEnv) {
		return
	}
	sockets := loadtest.EnvInt("OFFSYNC_WS_HOLD_SOCKETS", 50)
	hold := time.Duration(loadtest.EnvInt("OFFSYNC_WS_HOLD_SECONDS", 1)) * time.Second
	child := loadtest.StartChild(t, "TestHoldServerProcess", holdChildEnv)
	url := "ws://" + child.Payload + "/ws"
	base := child.RSSKB()

	ctx := t.Context()
	type held struct {
		c  *websocket.Client
		ch <-chan core.Notice
	}
	socks := make([]held, sockets)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32) // dial at most 32 at a time
	for i := range socks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := websocket.NewClient(url, nil)
			ch, err := c.Subscribe(ctx, []string{todo})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			socks[i] = held{c, ch}
		}()
	}
	wg.Wait()
	defer func() {
		for _, s := range socks {
			s.c.Close()
		}
	}()
	if len(errs) > 0 {
		t.Fatalf("%d of %d sockets failed to subscribe; first: %v", len(errs), sockets, errs[0])
	}
	time.Sleep(hold) // held open: heartbeats flow, nothing else
	loaded := child.RSSKB()

	writer := websocket.NewClient(url, nil)
	defer writer.Close()
	arrivedAt := make([]time.Time, sockets)
	var got sync.WaitGroup
	for i, s := range socks {
		got.Add(1)
		go func() {
			defer got.Done()
			for n := range s.ch {
				if n.Gap {
					mu.Lock()
					errs = append(errs, fmt.Errorf("socket %d reported a gap (it lost its connection while held)", i))
					mu.Unlock()
					continue
				}
				if n.Kind == todo && n.ID == "w" {
					arrivedAt[i] = time.Now()
					return
				}
			}
		}()
	}
	start := time.Now()
	res, err := writer.Push(ctx, []core.Op{{OpID: "hold-w", Kind: todo, ID: "w", Type: core.OpUpsert, Payload: json.RawMessage(`{"n":1}`)}})
	if err != nil || res[0].Status != core.StatusApplied {
		t.Fatalf("the write: %+v, %v", res, err)
	}
	got.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors while held; first: %v", len(errs), errs[0])
	}
	arrivals := make([]time.Duration, sockets)
	for i, at := range arrivedAt {
		arrivals[i] = at.Sub(start)
	}
	p := loadtest.Summarize(arrivals)
	perSocket := float64(loaded-base) / float64(sockets)
	t.Logf("%d sockets held %v: server RSS %d kB idle, %d kB loaded, %.1f kB per socket; notice latency of one write seen by all: p50 %v, p99 %v, max %v",
		sockets, hold, base, loaded, perSocket, p.P50, p.P99, p.Max)
}
