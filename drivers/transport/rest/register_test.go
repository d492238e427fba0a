package rest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

func TestRegisteredDriver(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, authOptions(), nil)
	tr, err := core.OpenTransport(ctx, "rest", s.srv.URL, map[string]any{"token": "good", "timeout": 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r := mustPush(t, tr, upsert("a", "todo", "x", `{}`))[0]; r.Status != core.StatusApplied {
		t.Fatalf("push: %+v", r)
	}
	bad := []struct {
		url  string
		opts map[string]any
	}{
		{"ftp://x", nil},
		{"not a url", nil},
		{s.srv.URL, map[string]any{"token": 5}},
		{s.srv.URL, map[string]any{"timeout": "soon"}},
		{s.srv.URL, map[string]any{"timeout": -1}},
		{s.srv.URL, map[string]any{"retries": 3}},
	}
	for _, b := range bad {
		if _, err := core.OpenTransport(ctx, "rest", b.url, b.opts); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s %v: %v", b.url, b.opts, err)
		}
	}
}
