package graphql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	genql "github.com/Khan/genqlient/graphql"
	"github.com/coder/websocket"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/graphql/internal/gqlclient"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/tracing"
)

// Subscribe implements core.Subscriber over the changes subscription. It
// returns once the server's ready event arrived (the subscription is in
// force). The stream is then kept: after a lost socket (or the server's
// complete) the client reconnects with backoff, and sends a Notice with Gap
// once subscribed again. The channel closes when ctx is done, on Close, or
// when the server refuses the subscription for good.
func (c *Client) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	if err := c.checkOpen("subscribe"); err != nil {
		return nil, err
	}
	if kinds == nil {
		kinds = []string{}
	}
	sctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	s, err := c.connect(sctx, kinds)
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	out := make(chan core.Notice, 16)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(out)
		defer stop()
		defer cancel()
		c.keep(sctx, kinds, s, out)
	}()
	return out, nil
}

// keep forwards s's notices to out and reconnects when s ends.
func (c *Client) keep(ctx context.Context, kinds []string, s *stream, out chan<- core.Notice) {
	for {
		err := s.forward(ctx, out)
		s.close()
		if ctx.Err() != nil {
			return
		}
		if !core.Retryable(err) {
			c.log.WarnContext(ctx, "graphql: the subscription was refused; closing it", "err", err)
			return
		}
		c.log.DebugContext(ctx, "graphql: subscription lost; reconnecting", "err", err)
		for attempt := 0; ; attempt++ {
			t := time.NewTimer(c.backoff.Delay(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			s, err = c.connect(ctx, kinds)
			if err == nil {
				break
			}
			if !core.Retryable(err) {
				c.log.WarnContext(ctx, "graphql: resubscribing was refused; closing the subscription", "err", err)
				return
			}
		}
		select {
		case out <- core.Notice{Gap: true}:
		case <-ctx.Done():
			s.close()
			return
		}
	}
}

// stream is one socket carrying one changes subscription.
type stream struct {
	conn    *wsConn
	errs    chan error // genqlient's: exactly one error ends its reader
	data    chan gqlclient.ChangesWsResponse
	errSeen bool
}

// connect opens a socket, authenticates (once more with a refreshed token
// after 4403), subscribes and waits for the ready event.
func (c *Client) connect(ctx context.Context, kinds []string) (*stream, error) {
	for attempt := 0; ; attempt++ {
		tok, err := wire.Token(ctx, "graphql", c.token, attempt > 0)
		if err != nil {
			return nil, err
		}
		s, err := c.open(ctx, kinds, tok)
		if err != nil && errors.Is(err, core.ErrUnauthorized) && attempt == 0 && c.token != nil {
			continue
		}
		return s, err
	}
}

func (c *Client) open(ctx context.Context, kinds []string, tok string) (*stream, error) {
	hctx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	d := &wsDialer{c: c, life: ctx}
	params := map[string]any{}
	if tok != "" {
		params["Authorization"] = "Bearer " + tok
	}
	if tp := tracing.Traceparent(ctx); tp != "" {
		params[tracing.Field] = tp
	}
	wsc := genql.NewClientUsingWebSocket(c.wsURL, d, genql.WithConnectionParams(params))
	errs, err := wsc.Start(hctx)
	if err != nil {
		if d.conn != nil {
			d.conn.shut()
		}
		return nil, socketErr(ctx, "subscribe", err)
	}
	data, _, err := gqlclient.Changes(ctx, wsc, kinds)
	s := &stream{conn: d.conn, errs: errs, data: data}
	if err != nil {
		s.close()
		return nil, socketErr(ctx, "subscribe", err)
	}
	select {
	case msg, ok := <-s.data:
		if !ok {
			s.data = nil
			s.close()
			return nil, fmt.Errorf("graphql: subscribe: %w: the server completed the subscription at once", core.ErrUnavailable)
		}
		if err := eventErr(&msg); err != nil {
			s.close()
			return nil, err
		}
		if msg.Data == nil || !msg.Data.Changes.Ready {
			s.close()
			return nil, fmt.Errorf("graphql: subscribe: %w: the first event is not {ready: true}", core.ErrUnavailable)
		}
		return s, nil
	case err := <-s.errs:
		s.errSeen = true
		s.close()
		return nil, socketErr(ctx, "subscribe", err)
	case <-hctx.Done():
		s.close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("graphql: subscribe: %w (%w)", core.ErrUnavailable, ctx.Err())
		}
		return nil, fmt.Errorf("graphql: subscribe: %w: no ready event within %v", core.ErrUnavailable, c.timeout)
	}
}

// eventErr is the error of an event that carries errors.
func eventErr(msg *gqlclient.ChangesWsResponse) error {
	if len(msg.Errors) == 0 {
		return nil
	}
	e := msg.Errors[0]
	code, _ := e.Extensions["code"].(string)
	reason, _ := e.Extensions["reason"].(string)
	status := 0
	if f, ok := e.Extensions["status"].(float64); ok {
		status = int(f)
	}
	return clientError("subscribe", code, status, reason, e.Message)
}

// forward sends the stream's notices to out until the stream ends.
func (s *stream) forward(ctx context.Context, out chan<- core.Notice) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.errs:
			s.errSeen = true
			return socketErr(ctx, "subscription", err)
		case msg, ok := <-s.data:
			if !ok {
				s.data = nil
				return fmt.Errorf("graphql: subscription: %w: completed by the server", core.ErrUnavailable)
			}
			if err := eventErr(&msg); err != nil {
				return err
			}
			if msg.Data == nil {
				continue
			}
			ev := &msg.Data.Changes
			n := core.Notice{Gap: ev.Gap}
			if ev.Ready && !ev.Gap {
				continue
			}
			if ev.Kind != nil {
				n.Kind = *ev.Kind
			}
			if ev.UpdatedAt != nil {
				n.UpdatedAt = ev.UpdatedAt.UTC()
			}
			if ev.Id != nil {
				n.ID = *ev.Id
			}
			select {
			case out <- n:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// close ends the socket and waits for genqlient's reader to report its end
// (its one error), so that no goroutine is left behind. genqlient's own
// Close is not used: it would close the data channel a second time after a
// complete.
func (s *stream) close() {
	if s.conn != nil {
		s.conn.shut()
	}
	for !s.errSeen {
		select {
		case <-s.errs:
			s.errSeen = true
		case _, ok := <-s.data:
			if !ok {
				s.data = nil
			}
		}
	}
}

// socketErr classifies the end of a socket: 4403 is a refused token
// (ErrUnauthorized: the token source is asked again), everything else is
// ErrUnavailable (reconnect later).
func socketErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("graphql: %s: %w (%w)", what, core.ErrUnavailable, ctx.Err())
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case closeForbidden:
			return fmt.Errorf("graphql: %s: %w (closed %d: %s)", what, core.ErrUnauthorized, ce.Code, ce.Reason)
		}
		return fmt.Errorf("graphql: %s: %w (closed %d: %s)", what, core.ErrUnavailable, ce.Code, ce.Reason)
	}
	if errors.Is(err, core.ErrUnavailable) || errors.Is(err, core.ErrUnauthorized) || errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("graphql: %s: %w", what, err)
	}
	return fmt.Errorf("graphql: %s: %w: %v", what, core.ErrUnavailable, err)
}

// wsDialer is genqlient's gorilla-shaped Dialer over coder/websocket.
type wsDialer struct {
	c    *Client
	life context.Context // the socket's lifetime
	conn *wsConn
}

func (d *wsDialer) DialContext(ctx context.Context, u string, h http.Header) (genql.WSConn, error) {
	h = h.Clone()
	h.Del("Sec-WebSocket-Protocol")
	h.Set("User-Agent", d.c.userAgent)
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: d.c.dialHC, HTTPHeader: h, Subprotocols: []string{"graphql-transport-ws"},
	})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w: no GraphQL endpoint at %s (HTTP 404)", core.ErrNotFound, u)
		}
		return nil, fmt.Errorf("%w: dialing %s: %v", core.ErrUnavailable, u, err)
	}
	if conn.Subprotocol() != "graphql-transport-ws" {
		conn.CloseNow()
		return nil, fmt.Errorf("%w: %s does not speak graphql-transport-ws", core.ErrUnavailable, u)
	}
	conn.SetReadLimit(1 << 20)
	a := &wsConn{conn: conn, life: d.life}
	hb := d.c.timeout // until the ack says the server's heartbeat
	if hb <= 0 {
		hb = 2 * d.c.heartbeat
	}
	a.silence.Store(int64(hb))
	a.heartbeat = d.c.heartbeat
	d.conn = a
	return a, nil
}

// wsConn is genqlient's gorilla-shaped WSConn over a coder/websocket
// connection. It answers the server's pings itself (genqlient does not),
// drops pongs, learns the server's heartbeat from connection_ack, ends a
// socket silent for more than two heartbeats, and reshapes error messages
// (an array of errors) into the {"errors":[...]} genqlient can read.
type wsConn struct {
	conn      *websocket.Conn
	life      context.Context
	silence   atomic.Int64 // the longest wait for a frame, in ns
	heartbeat time.Duration
	shutting  atomic.Bool
}

var _ genql.WSConn = (*wsConn)(nil)

// The message types of RFC 6455 genqlient uses (gorilla's numbers).
const (
	wsText  = 1
	wsClose = 8
)

func (a *wsConn) ReadMessage() (int, []byte, error) {
	for {
		rctx, cancel := context.WithTimeout(a.life, time.Duration(a.silence.Load()))
		_, data, err := a.conn.Read(rctx)
		cancel()
		if err != nil {
			return 0, nil, err
		}
		var m struct {
			Type    string          `json:"type"`
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &m) != nil {
			return wsText, data, nil
		}
		switch m.Type {
		case "ping":
			if err := a.write([]byte(`{"type":"pong"}`)); err != nil {
				return 0, nil, err
			}
			continue
		case "pong":
			continue
		case "connection_ack":
			var ack struct {
				HeartbeatMs int64 `json:"heartbeatMs"`
			}
			hb := a.heartbeat
			if json.Unmarshal(m.Payload, &ack) == nil && ack.HeartbeatMs > 0 {
				hb = time.Duration(ack.HeartbeatMs) * time.Millisecond
			}
			a.silence.Store(int64(2*hb + hb/2))
		case "error":
			b, err := json.Marshal(map[string]any{"type": "error", "id": m.ID,
				"payload": map[string]json.RawMessage{"errors": m.Payload}})
			if err == nil {
				data = b
			}
		}
		return wsText, data, nil
	}
}

func (a *wsConn) write(b []byte) error {
	ctx, cancel := context.WithTimeout(a.life, 10*time.Second)
	defer cancel()
	return a.conn.Write(ctx, websocket.MessageText, b)
}

func (a *wsConn) WriteMessage(t int, data []byte) error {
	if a.shutting.Load() {
		return nil
	}
	if t == wsClose {
		a.shut()
		return nil
	}
	return a.write(data)
}

// Close is genqlient's; the stream ends the socket with shut.
func (a *wsConn) Close() error {
	a.shut()
	return nil
}

// shut closes the socket at once; the reader's Read fails and genqlient's
// reader reports it.
func (a *wsConn) shut() {
	if a.shutting.Swap(true) {
		return
	}
	_ = a.conn.CloseNow()
}
