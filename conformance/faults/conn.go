package faults

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/offsync/offsync/core"
)

// Conns injects faults into connections: the ones it wraps (Wrap, Dialer)
// can be cut or stalled on demand, after a byte budget, or by the rules of
// an Injector for Method Conn (one call per Write). See the package
// documentation. A Conns is safe for concurrent use.
type Conns struct {
	inj atomic.Pointer[Injector]

	mu         sync.Mutex
	live       map[*conn]struct{}
	readLimit  int64 // budget of connections wrapped from now on; 0 = none
	writeLimit int64
	cutOnRead  bool // armed by CutOnRead
	cuts       int64
	wrapped    int64
}

// NewConns returns a Conns drawing faults from inj (nil: only the faults
// asked for by its methods).
func NewConns(inj *Injector) *Conns {
	cs := &Conns{live: map[*conn]struct{}{}}
	cs.inj.Store(inj)
	return cs
}

// SetInjector replaces the injector the wrapped connections consult (nil:
// none), for connections already wrapped too.
func (cs *Conns) SetInjector(inj *Injector) { cs.inj.Store(inj) }

// SetBudget makes every connection wrapped from now on be cut once it has
// read more than read bytes or written more than written bytes (0: no
// budget). The Read or Write that crosses the budget delivers the bytes up
// to it, and the connection is cut.
func (cs *Conns) SetBudget(read, written int64) {
	cs.mu.Lock()
	cs.readLimit, cs.writeLimit = read, written
	cs.mu.Unlock()
}

// Wrap returns c behind the faults of cs. It panics when c is nil.
func (cs *Conns) Wrap(c net.Conn) net.Conn {
	if c == nil {
		panic("faults: Conns.Wrap of a nil connection")
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	w := &conn{Conn: c, cs: cs, readLeft: cs.readLimit, writeLeft: cs.writeLimit,
		closed: make(chan struct{})}
	if w.readLeft == 0 {
		w.readLeft = -1
	}
	if w.writeLeft == 0 {
		w.writeLeft = -1
	}
	cs.live[w] = struct{}{}
	cs.wrapped++
	return w
}

// Dialer returns a DialContext function (as http.Transport.DialContext
// takes) that dials with dial (a net.Dialer's when nil) and wraps the
// connection.
func (cs *Conns) Dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return cs.Wrap(c), nil
	}
}

// Cut cuts every live connection now and returns how many it cut.
func (cs *Conns) Cut() int {
	n := 0
	for _, c := range cs.snapshot() {
		if c.cut() {
			n++
		}
	}
	return n
}

// CutOnRead arms one cut: the next Read that gets bytes on any live or
// future connection cuts it instead of returning them. Used right after a
// request was written, it loses the request's answer: the peer processed
// the request, the client never hears back.
func (cs *Conns) CutOnRead() {
	cs.mu.Lock()
	cs.cutOnRead = true
	cs.mu.Unlock()
}

// Stall makes every live connection half-open: its reads block until it is
// closed, its writes succeed without sending anything, and the real
// connection stays open, so neither side sees it end. It returns how many
// connections it stalled.
func (cs *Conns) Stall() int {
	n := 0
	for _, c := range cs.snapshot() {
		c.mu.Lock()
		if !c.isCut && !c.stalled {
			c.stalled = true
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// ConnStats counts what a Conns did.
type ConnStats struct {
	Wrapped int64 // connections wrapped
	Live    int   // connections wrapped, neither cut nor closed
	Cuts    int64 // connections cut (by any fault or method)
}

// Stats returns the counters.
func (cs *Conns) Stats() ConnStats {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return ConnStats{Wrapped: cs.wrapped, Live: len(cs.live), Cuts: cs.cuts}
}

func (cs *Conns) snapshot() []*conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]*conn, 0, len(cs.live))
	for c := range cs.live {
		out = append(out, c)
	}
	return out
}

// takeCutOnRead disarms and reports the armed CutOnRead.
func (cs *Conns) takeCutOnRead() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	armed := cs.cutOnRead
	cs.cutOnRead = false
	return armed
}

func (cs *Conns) forget(c *conn, cut bool) {
	cs.mu.Lock()
	delete(cs.live, c)
	if cut {
		cs.cuts++
	}
	cs.mu.Unlock()
}

// errCut is the error of a call on a connection that was cut.
func errCut(why string) error {
	return fmt.Errorf("faults: connection cut (%s): %w", why, core.ErrUnavailable)
}

// conn is one wrapped connection.
type conn struct {
	net.Conn
	cs     *Conns
	closed chan struct{} // closed by Close and by a cut

	mu          sync.Mutex
	readLeft    int64 // -1: no budget
	writeLeft   int64
	isCut       bool
	why         string
	stalled     bool
	cutNextRead bool // a DropAnswer fired on a write
	closeOnce   sync.Once
}

// cut closes the real connection; it reports whether this call cut it.
func (c *conn) cut() bool { return c.cutFor("on demand") }

func (c *conn) cutFor(why string) bool {
	c.mu.Lock()
	if c.isCut {
		c.mu.Unlock()
		return false
	}
	c.isCut, c.why = true, why
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.closed) })
	_ = c.Conn.Close()
	c.cs.forget(c, true)
	return true
}

func (c *conn) state() (cut bool, why string, stalled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isCut, c.why, c.stalled
}

// Read implements net.Conn.
func (c *conn) Read(p []byte) (int, error) {
	for {
		if cut, why, stalled := c.state(); cut {
			return 0, errCut(why)
		} else if stalled {
			<-c.closed
			return 0, net.ErrClosed
		}
		c.mu.Lock()
		if c.readLeft == 0 {
			c.mu.Unlock()
			c.cutFor("read budget spent")
			continue
		}
		if c.readLeft > 0 && int64(len(p)) > c.readLeft {
			p = p[:c.readLeft]
		}
		c.mu.Unlock()
		n, err := c.Conn.Read(p)
		if cut, why, stalled := c.state(); cut {
			return 0, errCut(why)
		} else if stalled {
			continue // a half-open link delivers nothing, its end included
		}
		if n == 0 {
			return 0, err
		}
		c.mu.Lock()
		stalled := c.stalled
		dropAnswer := c.cutNextRead
		c.cutNextRead = false
		if c.readLeft > 0 {
			c.readLeft -= int64(n)
		}
		c.mu.Unlock()
		if stalled {
			continue // a half-open link delivers nothing
		}
		if dropAnswer {
			c.cs.inj.Load().countIfSet(DropAnswer)
			c.cutFor("answer dropped")
			return 0, errCut("answer dropped")
		}
		if c.cs.takeCutOnRead() {
			c.cutFor("cut on read")
			return 0, errCut("cut on read")
		}
		return n, err
	}
}

// Write implements net.Conn.
func (c *conn) Write(p []byte) (int, error) {
	if cut, why, stalled := c.state(); cut {
		return 0, errCut(why)
	} else if stalled {
		return len(p), nil
	}
	inj := c.cs.inj.Load()
	var d *decision
	if inj != nil {
		d = inj.decide(&Call{Method: Conn})
		if err := inj.hold(context.Background(), d); err != nil {
			return 0, err
		}
		if d.has(DropRequest) {
			inj.count(DropRequest)
			c.cutFor("request dropped")
			return 0, errCut("request dropped")
		}
	}
	keep := len(p)
	why := ""
	if d != nil && d.has(CutBody) {
		if k := d.keep(CutBody, len(p)); k < keep {
			keep, why = k, "cut mid-write"
			inj.count(CutBody)
		}
	}
	c.mu.Lock()
	if c.writeLeft >= 0 && int64(keep) > c.writeLeft {
		keep, why = int(c.writeLeft), "write budget spent"
	}
	c.mu.Unlock()
	n, err := c.Conn.Write(p[:keep])
	c.mu.Lock()
	if c.writeLeft >= 0 {
		c.writeLeft -= int64(n)
	}
	c.mu.Unlock()
	if why != "" {
		c.cutFor(why)
		return n, errCut(why)
	}
	if err != nil {
		return n, err
	}
	if d != nil && d.has(DropAnswer) {
		c.mu.Lock()
		c.cutNextRead = true
		c.mu.Unlock()
	}
	return n, nil
}

// Close implements net.Conn.
func (c *conn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	c.cs.forget(c, false)
	return c.Conn.Close()
}

// countIfSet counts f on a non-nil injector.
func (inj *Injector) countIfSet(f Fault) {
	if inj != nil {
		inj.count(f)
	}
}
