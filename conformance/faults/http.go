package faults

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"sync"
)

// WrapHTTP returns an http.RoundTripper that sends every request through
// inner (http.DefaultTransport when nil), injecting the faults inj chooses
// for the HTTP method: DropRequest, DropAnswer, Duplicate, Delay and
// CutBody. Errors it makes wrap core.ErrUnavailable (an http.Client wraps
// them once more in a *url.Error; errors.Is sees through both). WrapHTTP
// panics when inj is nil.
func WrapHTTP(inner http.RoundTripper, inj *Injector) http.RoundTripper {
	if inj == nil {
		panic("faults: WrapHTTP needs an injector")
	}
	if inner == nil {
		inner = http.DefaultTransport
	}
	return &roundTripper{inner: inner, inj: inj}
}

type roundTripper struct {
	inner http.RoundTripper
	inj   *Injector
}

var _ http.RoundTripper = (*roundTripper)(nil)

// RoundTrip implements http.RoundTripper.
func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	inj := rt.inj
	d := inj.decide(&Call{Method: HTTP, Request: req})
	ctx := req.Context()
	if err := inj.hold(ctx, d); err != nil {
		closeBody(req)
		return nil, err
	}
	if d.has(DropRequest) {
		closeBody(req)
		inj.count(DropRequest)
		return nil, dropped(DropRequest, HTTP)
	}
	write := req.Method != http.MethodGet && req.Method != http.MethodHead
	if write && inj.checkpoint != nil {
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(info httptrace.WroteRequestInfo) {
				if info.Err == nil {
					inj.check(AfterRequestSent)
				}
			},
		}))
	}

	var resp *http.Response
	var err error
	if d.has(Duplicate) {
		resp, err = rt.twice(req)
	} else {
		resp, err = rt.inner.RoundTrip(req)
	}
	if err == nil && write {
		inj.check(AfterAuthorityCommit)
	}
	if d.has(DropAnswer) {
		if err == nil {
			discard(resp)
		}
		inj.count(DropAnswer)
		return nil, dropped(DropAnswer, HTTP)
	}
	if err == nil && d.has(CutBody) {
		n := int(resp.ContentLength)
		if n <= 0 {
			n = 512
		}
		cut := &cutBody{rc: resp.Body, left: d.keep(CutBody, n), inj: inj}
		resp.Body = cut
		if rwc, ok := cut.rc.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
			// The connection a protocol switch hands over (a WebSocket's)
			// stays one for its client: writes go through, reads are cut.
			resp.Body = &cutConn{cutBody: cut, w: rwc}
		}
	}
	return resp, err
}

// twice sends req, discards the answer, sends it again and returns the
// second answer.
func (rt *roundTripper) twice(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("faults: duplicate: reading the request body: %w", err)
		}
		body = b
	}
	clone := func() *http.Request {
		r := req.Clone(req.Context())
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		return r
	}
	rt.inj.count(Duplicate)
	if resp, err := rt.inner.RoundTrip(clone()); err == nil {
		discard(resp)
	}
	return rt.inner.RoundTrip(clone())
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// discard reads an answer to its end, so that the server has finished
// writing it, and closes it. An event stream never ends, nor does the
// connection a protocol switch (a WebSocket's 101) hands over: they are
// only closed.
func discard(resp *http.Response) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/event-stream" && resp.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
}

// cutBody delivers the first left bytes of a body, then fails the way a
// connection cut mid-body does: with io.ErrUnexpectedEOF.
type cutBody struct {
	rc   io.ReadCloser
	left int
	inj  *Injector
	once sync.Once
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// A body that ends right here is not cut.
		var probe [1]byte
		if n, err := b.rc.Read(probe[:]); n == 0 && err == io.EOF {
			return 0, io.EOF
		}
		b.once.Do(func() { b.inj.count(CutBody) })
		return 0, io.ErrUnexpectedEOF
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= n
	return n, err
}

func (b *cutBody) Close() error { return b.rc.Close() }

// cutConn is a cutBody over the connection of a 101 answer: a client that
// needs it writable (a WebSocket dialer does) still gets a connection, and
// after Keep bytes it is cut: reads fail with io.ErrUnexpectedEOF and the
// connection is closed, as one cut mid-stream is. A connection has no end
// of its own to tell apart from a cut, so it is not probed for one.
type cutConn struct {
	*cutBody
	w io.Writer
}

func (c *cutConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.once.Do(func() {
			c.inj.count(CutBody)
			c.rc.Close()
		})
		return 0, io.ErrUnexpectedEOF
	}
	return c.cutBody.Read(p)
}

func (c *cutConn) Write(p []byte) (int, error) { return c.w.Write(p) }
