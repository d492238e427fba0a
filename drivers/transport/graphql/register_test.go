package graphql_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
	gql "github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/server"
)

func TestOpeners(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	if _, err := server.OpenServer(ctx, "graphql", svc, server.TransportConfig{Options: map[string]any{"playground": true}}); !errors.Is(err, core.ErrInvalid) ||
		!strings.Contains(err.Error(), "introspection, max_depth, max_complexity, origins") {
		t.Errorf("unknown server option: %v", err)
	}
	if _, err := server.OpenServer(ctx, "graphql", svc, server.TransportConfig{Options: map[string]any{"max_depth": -1}}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("bad max_depth: %v", err)
	}
	if d, err := server.LookupTransport("graphql"); err != nil || d.Path != "/graphql" || d.Rank != 20 {
		t.Errorf("registration: %+v %v", d, err)
	}
	l := serve(t, svc)
	tr, err := core.OpenTransport(ctx, "graphql", l.URL(), map[string]any{"token": "x", "timeout": "5s", "page_size": 10})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.(*gql.Client).Close()
	if _, err := tr.Pull(ctx, core.PullRequest{Kind: "todo"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		url  string
		opts map[string]any
	}{{"ws://127.0.0.1:1/graphql", nil}, {"http:///graphql", nil}, {l.URL(), map[string]any{"nope": 1}}, {l.URL(), map[string]any{"timeout": "soon"}}} {
		if _, err := core.OpenTransport(ctx, "graphql", bad.url, bad.opts); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s %v: %v, want ErrInvalid", bad.url, bad.opts, err)
		}
	}
}

func TestIntrospectionOption(t *testing.T) {
	svc := newAuthority(t, nil)
	q := request(`{ __schema { queryType { name } } }`, nil)
	off := serve(t, svc)
	if a := post(t, off.URL(), q, ""); len(a.Errors) == 0 {
		t.Errorf("introspection answered while off: %s", a.Data)
	}
	on := serveOn(t, svc, "127.0.0.1:0", server.TransportConfig{Options: map[string]any{"introspection": true}})
	if a := post(t, on.URL(), q, ""); len(a.Errors) != 0 || !strings.Contains(string(a.Data), `"Query"`) {
		t.Errorf("introspection on: %s %+v", a.Data, a.Errors)
	}
}

// Shutdown ends a live subscription with 1001 (going away).
func TestShutdownGoingAway(t *testing.T) {
	svc := newAuthority(t, nil)
	l := serve(t, svc)
	c := wsDial(t, l)
	wsSend(t, c, `{"type":"connection_init","payload":{}}`)
	wsSend(t, c, `{"id":"1","type":"subscribe","payload":{"query":"subscription { changes(kinds: []) { ready } }"}}`)
	ctx := testCtx(t)
	for { // wait for the ready event
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(msg), `"ready":true`) {
			break
		}
	}
	go l.stop()
	ce := wsClosed(t, c)
	if ce.Code != 1001 || ce.Reason != "going away" {
		t.Errorf("closed %d %q, want 1001 going away", ce.Code, ce.Reason)
	}
}
