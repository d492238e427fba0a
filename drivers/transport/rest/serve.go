package rest

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Half is the REST server half as offsync.Serve runs it: a Handler whose
// event streams end when Shutdown starts, so that the HTTP server's own
// shutdown waits only for ordinary requests.
type Half struct {
	h       http.Handler
	streams context.Context
	end     context.CancelFunc
	wg      sync.WaitGroup
}

var _ server.HTTPTransport = (*Half)(nil)

// openServer is the "rest" server half's opener. It takes no options.
func openServer(_ context.Context, t core.Transport, cfg server.TransportConfig) (server.TransportServer, error) {
	if len(cfg.Options) > 0 {
		keys := make([]string, 0, len(cfg.Options))
		for k := range cfg.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("rest: %w: unknown option %q (the rest server half takes none)", core.ErrInvalid, keys[0])
	}
	maxLimit := 0
	if b, ok := t.(core.Batcher); ok {
		if bl, err := b.BatchLimits(context.Background()); err == nil {
			maxLimit = bl.MaxLimit
		}
	}
	return NewHalf(t, &HandlerOptions{
		MaxBody:   cfg.Limits.MaxMessage,
		MaxLimit:  maxLimit,
		Heartbeat: cfg.Limits.Heartbeat,
		Served:    cfg.Served,
		Logger:    cfg.Logger,
	}), nil
}

// NewHalf returns the REST server half over t (see NewHandler).
func NewHalf(t core.Transport, opts *HandlerOptions) *Half {
	streams, end := context.WithCancel(context.Background())
	return &Half{h: NewHandler(t, opts), streams: streams, end: end}
}

// ServeHTTP implements http.Handler.
func (s *Half) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/events") {
		s.h.ServeHTTP(w, r)
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()
	s.h.ServeHTTP(w, r.WithContext(ctx))
}

// Shutdown ends the event streams and waits for them to return, until ctx
// is done. Ordinary requests are the HTTP server's to drain.
func (s *Half) Shutdown(ctx context.Context) error {
	s.end()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
