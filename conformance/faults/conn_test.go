package faults_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
)

// tcpPeer is a real TCP server on 127.0.0.1 that records what each
// connection sent until it ended, and runs an optional script per
// connection.
type tcpPeer struct {
	ln   net.Listener
	mu   sync.Mutex
	got  []string // per connection, everything it sent before it ended
	wg   sync.WaitGroup
	done chan string
}

func newTCPPeer(t *testing.T, script func(c net.Conn)) *tcpPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpPeer{ln: ln, done: make(chan string, 16)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				if script != nil {
					script(c)
				}
				b, _ := io.ReadAll(c)
				p.done <- string(b)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *tcpPeer) dial(t *testing.T, cs *faults.Conns) net.Conn {
	t.Helper()
	c, err := cs.Dialer(nil)(t.Context(), "tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantCut(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("%s: error %v, want a cut (wrapping core.ErrUnavailable)", what, err)
	}
}

func TestConnWriteBudget(t *testing.T) {
	p := newTCPPeer(t, nil)
	cs := faults.NewConns(nil)
	cs.SetBudget(0, 5)
	c := p.dial(t, cs)
	n, err := c.Write([]byte("hello world"))
	if n != 5 {
		t.Errorf("wrote %d bytes, want the 5 of the budget", n)
	}
	wantCut(t, "write over the budget", err)
	if got := <-p.done; got != "hello" {
		t.Errorf("the peer got %q before the connection ended, want %q", got, "hello")
	}
	if _, err := c.Write([]byte("more")); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("a write after the cut: %v, want a cut", err)
	}
	if s := cs.Stats(); s.Cuts != 1 || s.Live != 0 || s.Wrapped != 1 {
		t.Errorf("stats %+v, want 1 wrapped, 1 cut, 0 live", s)
	}
}

func TestConnReadBudget(t *testing.T) {
	p := newTCPPeer(t, func(c net.Conn) { _, _ = c.Write([]byte("0123456789")) })
	cs := faults.NewConns(nil)
	cs.SetBudget(4, 0)
	c := p.dial(t, cs)
	got, err := io.ReadAll(c)
	if string(got) != "0123" {
		t.Errorf("read %q, want the 4 bytes of the budget", got)
	}
	wantCut(t, "read over the budget", err)
	<-p.done
}

// The answer is lost after the request arrived: the peer has the whole
// request, the client gets an error instead of the answer.
func TestConnCutOnRead(t *testing.T) {
	p := newTCPPeer(t, func(c net.Conn) {
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err == nil {
			_, _ = c.Write([]byte("answer to " + string(b)))
		}
	})
	cs := faults.NewConns(nil)
	c := p.dial(t, cs)
	cs.CutOnRead()
	if _, err := c.Write([]byte("push")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 64))
	wantCut(t, "read of the answer", err)
	<-p.done
	if s := cs.Stats(); s.Cuts != 1 {
		t.Errorf("stats %+v, want one cut", s)
	}
	// Disarmed: a second connection reads normally.
	c2 := p.dial(t, cs)
	if _, err := c2.Write([]byte("pull")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, err := io.ReadAtLeast(c2, b, len("answer to pull"))
	if err != nil || string(b[:n]) != "answer to pull" {
		t.Errorf("second connection read %q, %v", b[:n], err)
	}
}

func TestConnInjectorRules(t *testing.T) {
	t.Run("DropRequest", func(t *testing.T) {
		p := newTCPPeer(t, nil)
		inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropRequest, Method: faults.Conn, Nth: 2}}})
		c := p.dial(t, faults.NewConns(inj))
		if _, err := c.Write([]byte("one;")); err != nil {
			t.Fatal(err)
		}
		_, err := c.Write([]byte("two;"))
		wantCut(t, "the dropped write", err)
		if got := <-p.done; got != "one;" {
			t.Errorf("the peer got %q, want only the first write", got)
		}
		if n := inj.Stats().Injected[faults.DropRequest]; n != 1 {
			t.Errorf("%d drop_request counted, want 1", n)
		}
	})
	t.Run("DropAnswer", func(t *testing.T) {
		p := newTCPPeer(t, func(c net.Conn) {
			b := make([]byte, 3)
			if _, err := io.ReadFull(c, b); err == nil {
				_, _ = c.Write([]byte("ok"))
			}
		})
		inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropAnswer, Method: faults.Conn}}})
		c := p.dial(t, faults.NewConns(inj))
		if _, err := c.Write([]byte("req")); err != nil {
			t.Fatalf("the write of a DropAnswer goes through: %v", err)
		}
		_, err := c.Read(make([]byte, 8))
		wantCut(t, "the answer's read", err)
		if got := <-p.done; got != "" {
			t.Errorf("the peer got %q after the request", got)
		}
		if n := inj.Stats().Injected[faults.DropAnswer]; n != 1 {
			t.Errorf("%d drop_answer counted, want 1", n)
		}
	})
	t.Run("CutBody", func(t *testing.T) {
		p := newTCPPeer(t, nil)
		inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.CutBody, Method: faults.Conn, Keep: 3}}})
		c := p.dial(t, faults.NewConns(inj))
		n, err := c.Write([]byte("abcdef"))
		wantCut(t, "the cut write", err)
		if n != 3 {
			t.Errorf("wrote %d bytes, want 3", n)
		}
		if got := <-p.done; got != "abc" {
			t.Errorf("the peer got %q, want %q", got, "abc")
		}
	})
	t.Run("SetEnabled", func(t *testing.T) {
		p := newTCPPeer(t, nil)
		inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropRequest, Method: faults.Conn}}})
		inj.SetEnabled(false)
		cs := faults.NewConns(nil)
		cs.SetInjector(inj)
		c := p.dial(t, cs)
		if _, err := c.Write([]byte("through")); err != nil {
			t.Fatalf("a disabled injector cut the write: %v", err)
		}
		c.Close()
		if got := <-p.done; got != "through" {
			t.Errorf("the peer got %q", got)
		}
	})
}

func TestConnCutAndStall(t *testing.T) {
	p := newTCPPeer(t, nil)
	cs := faults.NewConns(nil)
	a, b := p.dial(t, cs), p.dial(t, cs)
	if _, err := a.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if n := cs.Stall(); n != 2 {
		t.Fatalf("stalled %d connections, want 2", n)
	}
	// A stalled connection swallows writes and its reads wait for Close.
	if n, err := b.Write([]byte("lost")); n != 4 || err != nil {
		t.Errorf("a stalled write: %d, %v; want it to look sent", n, err)
	}
	readErr := make(chan error, 1)
	go func() { _, err := b.Read(make([]byte, 8)); readErr <- err }()
	b.Close()
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("a stalled read ended with %v, want net.ErrClosed once closed", err)
	}
	got := []string{<-p.done}
	// Cut ends a stalled connection too: the peer sees it end.
	if n := cs.Cut(); n != 1 {
		t.Errorf("cut %d connections, want the 1 still open", n)
	}
	got = append(got, <-p.done)
	if !(got[0] == "" && got[1] == "a") && !(got[0] == "a" && got[1] == "") {
		t.Errorf("the peer got %q; want \"a\" from the first connection and nothing from the second", got)
	}
	if s := cs.Stats(); s.Live != 0 || s.Cuts != 1 {
		t.Errorf("stats %+v, want 0 live and 1 cut", s)
	}
}
