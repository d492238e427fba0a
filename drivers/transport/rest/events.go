package rest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/offsync/offsync/core"
)

// noticeWire is one server-sent event's data.
type noticeWire struct {
	Kind       string `json:"kind"`
	UpdatedAt  string `json:"updated_at"`
	UpdatedAt2 string `json:"updatedAt"`
	ID         string `json:"id"`
	Gap        bool   `json:"gap"`
}

// Subscribe implements core.Subscriber over GET /events (server-sent
// events). It needs "events" in /health; otherwise the error wraps
// errors.ErrUnsupported and the engine keeps its timer. No kinds means
// every kind the authority lets the caller read. It returns once the
// response headers have arrived, so the subscription is in force. A broken
// stream is re-opened with backoff and a Notice with Gap set follows each
// reconnect. The channel is closed when ctx is done.
func (c *Client) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	h, err := c.probe(ctx)
	if err != nil {
		return nil, err
	}
	if !h.events {
		return nil, fmt.Errorf("rest: subscribe: %s does not list \"events\" in /health: %w", c.base, errors.ErrUnsupported)
	}
	body, err := c.openStream(ctx, kinds)
	if err != nil {
		return nil, err
	}
	ch := make(chan core.Notice, 64)
	go c.stream(ctx, kinds, body, ch)
	return ch, nil
}

// openStream sends GET /events and returns the body once the headers are in.
// Timeout bounds only the wait for the headers.
func (c *Client) openStream(ctx context.Context, kinds []string) (io.ReadCloser, error) {
	var q url.Values
	if len(kinds) > 0 {
		q = url.Values{"kinds": {strings.Join(kinds, ",")}}
	}
	target := c.url("/events", q)
	for attempt := 0; ; attempt++ {
		tok, err := c.bearer(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithCancel(ctx)
		var timer *time.Timer
		if c.timeout > 0 {
			timer = time.AfterFunc(c.timeout, cancel)
		}
		req, err := c.newRequest(sctx, http.MethodGet, target, nil, tok, map[string]string{
			"Accept": "text/event-stream", "Cache-Control": "no-cache"})
		if err != nil {
			cancel()
			return nil, err
		}
		resp, err := c.hc.Do(req)
		if timer != nil && !timer.Stop() {
			if err == nil {
				resp.Body.Close()
			}
			cancel()
			return nil, fmt.Errorf("rest: GET /events: %w: no answer within %v", core.ErrUnavailable, c.timeout)
		}
		if err != nil {
			cancel()
			return nil, netErr(ctx, "GET /events", err)
		}
		if resp.StatusCode == http.StatusOK {
			return &cancelBody{ReadCloser: resp.Body, cancel: cancel}, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		r := &response{status: resp.StatusCode, header: resp.Header, body: b}
		if r.status == http.StatusUnauthorized && attempt == 0 && c.token != nil {
			continue
		}
		return nil, statusErr("GET /events", r)
	}
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// stream reads events until ctx is done, re-opening a broken stream.
func (c *Client) stream(ctx context.Context, kinds []string, body io.ReadCloser, ch chan<- core.Notice) {
	defer close(ch)
	for {
		err := c.readEvents(ctx, body, ch)
		body.Close()
		if ctx.Err() != nil {
			return
		}
		c.log.WarnContext(ctx, "rest: event stream broken; reconnecting", "err", err)
		delay := c.reconnect
		for {
			// Full jitter over [delay/2, delay).
			wait := delay/2 + rand.N(delay/2+1)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			body, err = c.openStream(ctx, kinds)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			c.log.WarnContext(ctx, "rest: reconnecting the event stream failed", "err", err)
			delay = min(delay*2, 30*time.Second)
		}
		select {
		case ch <- core.Notice{Gap: true}:
		case <-ctx.Done():
			body.Close()
			return
		}
	}
}

// readEvents parses server-sent events from r into notices. It returns
// when the stream ends or fails.
func (c *Client) readEvents(ctx context.Context, r io.Reader, ch chan<- core.Notice) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if len(data) > 0 {
				if n, ok := c.parseNotice(ctx, data); ok {
					select {
					case ch <- n:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				data = data[:0]
			}
			continue
		}
		if line[0] == ':' { // a comment: heartbeat
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue // event:, id:, retry: carry nothing we need
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if len(data) > 0 {
			data = append(data, '\n')
		}
		data = append(data, value...)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

func (c *Client) parseNotice(ctx context.Context, data []byte) (core.Notice, bool) {
	var w noticeWire
	if err := json.Unmarshal(data, &w); err != nil {
		c.log.WarnContext(ctx, "rest: ignoring an unreadable event", "err", err)
		return core.Notice{}, false
	}
	n := core.Notice{Kind: w.Kind, ID: w.ID, Gap: w.Gap}
	ts := w.UpdatedAt
	if ts == "" {
		ts = w.UpdatedAt2
	}
	if ts != "" {
		t, err := core.ParseTime(ts)
		if err != nil {
			c.log.WarnContext(ctx, "rest: ignoring an event with a bad timestamp", "err", err)
			return core.Notice{}, false
		}
		n.UpdatedAt = t
	}
	if n.Kind == "" && !n.Gap {
		return core.Notice{}, false
	}
	return n, true
}
