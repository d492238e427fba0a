package graphql

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
)

// Close codes of the subscription socket.
const (
	closeGoingAway    = 1001 // Shutdown
	closeUnauthorized = 4401 // a subscribe before connection_init (graphql-transport-ws)
	closeForbidden    = 4403 // connection_init with a refused token
)

// errSubscribeBeforeInit ends a socket whose first message was a subscribe.
var errSubscribeBeforeInit = errors.New("graphql: subscribe before connection_init")

// wsImplementation accepts the subscription sockets with gqlgen's
// coder/websocket implementation and wraps each connection: the first
// message must be connection_init (graphql-transport-ws's 4401 otherwise),
// and a socket ended by Shutdown closes with 1001 (going away), not 1000.
type wsImplementation struct {
	s      *Server
	accept websocket.AcceptOptions
}

var _ transport.WebsocketImplementation = wsImplementation{}

func (i wsImplementation) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	inner, err := transport.CoderWebsocketImplementation{AcceptOptions: i.accept}.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	ss, _ := r.Context().Value(socketKey{}).(*socketState)
	return &serverConn{WebsocketConn: inner, s: i.s, state: ss}, nil
}

type serverConn struct {
	transport.WebsocketConn
	s       *Server
	state   *socketState
	started atomic.Bool
}

var (
	_ transport.WebsocketReadLimiter   = (*serverConn)(nil)
	_ transport.WebsocketReadDeadliner = (*serverConn)(nil)
)

func (c *serverConn) NextReader() (int, io.Reader, error) {
	mt, r, err := c.WebsocketConn.NextReader()
	if err != nil || c.started.Swap(true) {
		return mt, r, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return mt, nil, err
	}
	var m struct {
		Type string `json:"type"`
	}
	if c.Subprotocol() == "graphql-transport-ws" && json.Unmarshal(data, &m) == nil && m.Type == "subscribe" {
		_ = c.WebsocketConn.WriteClose(closeUnauthorized, "Unauthorized")
		return mt, nil, errSubscribeBeforeInit
	}
	return mt, bytes.NewReader(data), nil
}

func (c *serverConn) WriteClose(code int, msg string) error {
	switch {
	case c.s.closing.Load():
		code, msg = closeGoingAway, "going away"
	case c.state.expired():
		code, msg = closeForbidden, "UNAUTHENTICATED: the token expired"
	}
	return c.WebsocketConn.WriteClose(code, msg)
}

func (c *serverConn) SetReadLimit(n int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(n)
	}
}

func (c *serverConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
