// Command customserver is an offsync authority written in Go rather than run
// with `offsync serve`: a typed table (inventory items, a bun model), a
// business rule enforced on every write (a stock never goes negative, not
// even through a forced clientWins push), bearer tokens, and a scope (each
// owner sees and writes only its own items), served over REST.
//
//	go run ./examples/customserver -http 127.0.0.1:8080 -db ./inventory.db
//	curl -H 'Authorization: Bearer alice-token' localhost:8080/item
//
// Replicas use the same Item model with core.NewTable and rest.NewClient; see
// main_test.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
	"github.com/uptrace/bun"
)

// Item is an inventory line: a typed, synced table. The server and every
// replica use the same model.
type Item struct {
	bun.BaseModel `bun:"table:items"`
	ID            string `bun:"id,pk" json:"id"`
	Name          string `json:"name"`
	Stock         int    `json:"stock"`
	// Owner is the scope field: the server sets it to the caller's
	// principal on every new item, and hides other owners' items.
	Owner string `json:"owner"`
	core.SyncColumns
}

// Items is the "item" kind.
var Items = core.NewTable[Item]("item")

// ErrNegativeStock is the business rule's refusal; it wraps core.ErrRejected
// so the authority refuses the op for good (the replica dead-letters it).
var ErrNegativeStock = fmt.Errorf("%w: stock cannot go negative", core.ErrRejected)

// demoTokens maps bearer tokens to principals. A real server checks its
// identity provider's tokens in Authenticate instead.
var demoTokens = map[string]string{
	"alice-token": "alice",
	"bob-token":   "bob",
}

// validate is the business rule, called for every op that passed the base
// and scope checks, forced ones included.
func validate(_ context.Context, p core.Principal, op core.Op, current *core.Record) error {
	if op.Kind != Items.Kind() || op.Type != core.OpUpsert {
		return nil
	}
	var it struct {
		Stock *int   `json:"stock"`
		Name  string `json:"name"`
	}
	if err := json.Unmarshal(op.Payload, &it); err != nil {
		return fmt.Errorf("%w: item %s: %v", core.ErrRejected, op.ID, err)
	}
	if it.Stock != nil && *it.Stock < 0 {
		return fmt.Errorf("item %s (%s): stock %d: %w", op.ID, it.Name, *it.Stock, ErrNegativeStock)
	}
	return nil
}

func authenticate(_ context.Context, token string) (core.Principal, error) {
	if id, ok := demoTokens[token]; ok {
		return core.Principal{ID: id}, nil
	}
	return core.Principal{}, core.ErrUnauthorized
}

func scope(_ context.Context, p core.Principal, kind string) (*core.Filter, error) {
	if kind == Items.Kind() {
		return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
	}
	return nil, nil
}

// NewAuthority returns the authority over store: the typed table, the rule,
// the tokens and the scope.
func NewAuthority(ctx context.Context, store core.Store, log *slog.Logger) (*server.Service, error) {
	return server.New(ctx, store, &server.Options{
		Tables:       []core.Table{Items},
		Validate:     validate,
		Authenticate: authenticate,
		Scope:        scope,
		Logger:       log,
	})
}

func main() {
	addr := flag.String("http", "127.0.0.1:8080", "REST listen address")
	db := flag.String("db", "./inventory.db", "SQLite database file")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *db, log); err != nil {
		log.Error("customserver", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, addr, dbPath string, log *slog.Logger) error {
	store, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Synchronous: "FULL"})
	if err != nil {
		return err
	}
	defer store.Close()
	svc, err := NewAuthority(ctx, store, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rest.NewHandler(svc, &rest.HandlerOptions{Logger: log}), ReadHeaderTimeout: 10 * time.Second}
	// Subscriptions end when the service closes, so event streams let the
	// shutdown finish.
	srv.RegisterOnShutdown(func() { svc.Close() })
	log.Info("listening on "+ln.Addr().String(), "db", dbPath)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
