package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore"
)

// payload is a Notice on the wire of NOTIFY.
type payload struct {
	Kind      string `json:"k"`
	UpdatedAt int64  `json:"u,omitempty"` // microseconds since the epoch
	ID        string `json:"i,omitempty"`
}

// maxPayload keeps under PostgreSQL's 8000-byte NOTIFY payload limit.
const maxPayload = 7900

func encodeNotice(n core.Notice) (string, error) {
	p := payload{Kind: n.Kind, ID: n.ID}
	if !n.UpdatedAt.IsZero() {
		p.UpdatedAt = core.Micro(n.UpdatedAt).UnixMicro()
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	if len(b) > maxPayload {
		// An id too long for NOTIFY: announce the kind alone, and the
		// listener pulls it.
		b, err = json.Marshal(payload{Kind: n.Kind})
		if err != nil {
			return "", err
		}
		if len(b) > maxPayload {
			return "", fmt.Errorf("%w: postgres: announce: kind name of %d bytes", core.ErrTooLarge, len(n.Kind))
		}
	}
	return string(b), nil
}

func decodeNotice(s string) (core.Notice, error) {
	var p payload
	if err := json.Unmarshal([]byte(s), &p); err != nil || p.Kind == "" {
		return core.Notice{}, fmt.Errorf("%w: postgres: notification %q", core.ErrInvalid, s)
	}
	n := core.Notice{Kind: p.Kind, ID: p.ID}
	if p.UpdatedAt != 0 {
		n.UpdatedAt = time.UnixMicro(p.UpdatedAt).UTC()
	}
	return n, nil
}

// Announce implements core.Notifier: it sends n to every Listen on the
// database, from inside the write transaction carried by ctx, so that it is
// delivered only if that transaction commits. Without a transaction in ctx
// it runs in one of its own. When the store polls (Options.Notify) it sends
// nothing: the kind's version, which every write moves at commit, is what
// the pollers watch.
func (s *Store) Announce(ctx context.Context, n core.Notice) error {
	if n.Kind == "" {
		return fmt.Errorf("%w: postgres: announce without a kind", core.ErrInvalid)
	}
	if s.polling.Load() {
		return nil
	}
	msg, err := encodeNotice(n)
	if err != nil {
		return err
	}
	return s.notify(ctx, msg)
}

// Listen implements core.Notifier: it holds a dedicated connection that
// listens on the store's channel, and streams the notices of every instance
// until ctx is done or the store is closed, then closes the channel. After
// losing the connection it reconnects (backing off while it fails) and sends
// a Notice with Gap set, since notices may have been missed. The listener is
// in force when Listen returns. When the store polls (Options.Notify), it
// reads every kind's version each PollInterval instead and sends a Notice
// (the kind and its last version, no id) for each kind that moved.
func (s *Store) Listen(ctx context.Context) (<-chan core.Notice, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errListenClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	key := new(int)
	s.cancels[key] = cancel
	s.wg.Add(1)
	s.mu.Unlock()
	done := func() {
		cancel()
		s.mu.Lock()
		delete(s.cancels, key)
		s.mu.Unlock()
		s.wg.Done()
	}

	if s.polling.Load() {
		seen, err := s.readVersions(ctx)
		if err != nil {
			done()
			return nil, fmt.Errorf("offsync: postgres: listen (poll): %w: %v", core.ErrUnavailable, err)
		}
		ch := make(chan core.Notice, 64)
		go func() {
			defer done()
			defer close(ch)
			s.pollLoop(ctx, seen, ch)
		}()
		return ch, nil
	}
	conn, err := s.listenConn(ctx)
	if err != nil {
		done()
		return nil, err
	}
	ch := make(chan core.Notice, 64)
	go func() {
		defer done()
		defer close(ch)
		s.listenLoop(ctx, conn, ch)
	}()
	return ch, nil
}

// listenConn connects outside the pool and runs LISTEN.
func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "offsync-listen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("offsync: postgres: listen: %w: %v", core.ErrUnavailable, err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("offsync: postgres: listen: %w: %v", core.ErrUnavailable, err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (s *Store) listenLoop(ctx context.Context, conn *pgx.Conn, ch chan<- core.Notice) {
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	for {
		if conn == nil {
			conn = s.reconnect(ctx)
			if conn == nil {
				return // ctx done
			}
			if !send(ctx, ch, core.Notice{Gap: true}) {
				return
			}
		}
		msg, err := conn.WaitForNotification(ctx)
		if err != nil {
			closeConn(conn)
			conn = nil
			if ctx.Err() != nil {
				return
			}
			continue
		}
		n, err := decodeNotice(msg.Payload)
		if err != nil {
			continue // not ours (another program on the channel): ignored
		}
		if !send(ctx, ch, n) {
			return
		}
	}
}

// reconnect connects again, backing off exponentially while it fails; it
// returns nil when ctx is done.
func (s *Store) reconnect(ctx context.Context) *pgx.Conn {
	wait := time.Duration(0)
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		conn, err := s.listenConn(ctx)
		if err == nil {
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		wait = min(max(2*wait, listenBackoffMin), listenBackoffMax)
	}
}

func send(ctx context.Context, ch chan<- core.Notice, n core.Notice) bool {
	select {
	case ch <- n:
		return true
	case <-ctx.Done():
		return false
	}
}

// notify runs pg_notify in the transaction carried by ctx, or in one of its own.
func (s *Store) notify(ctx context.Context, msg string) error {
	exec := func(ctx context.Context, db bun.IDB) error {
		if _, err := db.ExecContext(ctx, "SELECT pg_notify(?, ?)", s.channel, msg); err != nil {
			return fmt.Errorf("offsync: postgres: announce: %w", err)
		}
		return nil
	}
	if tx := s.TxFrom(ctx); tx != nil {
		if tx.ReadOnly() {
			return fmt.Errorf("%w: postgres: announce inside View", core.ErrInvalid)
		}
		return exec(ctx, tx.Bun())
	}
	return s.Store.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		return exec(ctx, bunstore.Bun(tx))
	})
}
