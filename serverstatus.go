package offsync

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// ServerStatus opens the store of a server config and reports, for each
// kind the config serves, its tombstone horizon and how many tombstones
// the store holds (server.Service.Status). It only reads: no collection
// runs, nothing is served. Kinds served through a dynamic pattern are not
// listed.
func ServerStatus(ctx context.Context, cfg *config.Server) ([]server.KindStatus, error) {
	if cfg == nil {
		return nil, fmt.Errorf("offsync: ServerStatus: %w: nil config", core.ErrInvalid)
	}
	opts, err := serverOptions(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	opts.TombstoneRetention = 0 // a look, not a collection
	store, err := core.OpenStore(ctx, cfg.Store.Driver, cfg.Store.DSN, authorityStoreOptions(cfg.Store))
	if err != nil {
		return nil, cfg.Wrap("store", fmt.Errorf("open the %s store: %w", cfg.Store.Driver, err))
	}
	defer store.Close()
	svc, err := server.New(ctx, store, opts)
	if err != nil {
		return nil, fmt.Errorf("offsync: open the authority: %w", err)
	}
	defer svc.Close()
	return svc.Status(ctx)
}
