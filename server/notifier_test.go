package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// notifyingStore adds an in-process core.Notifier to a real store, with the
// contract of Postgres NOTIFY: a notice announced in a write transaction is
// delivered to every listener only when that transaction commits.
type notifyingStore struct {
	core.Store
	mu        sync.Mutex
	listeners []chan core.Notice
}

type announcedKey struct{}

func (s *notifyingStore) Update(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	if ctx.Value(announcedKey{}) != nil { // nested: joins the outer transaction
		return s.Store.Update(ctx, fn)
	}
	var announced []core.Notice
	ctx = context.WithValue(ctx, announcedKey{}, &announced)
	if err := s.Store.Update(ctx, fn); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range announced {
		for _, l := range s.listeners {
			l <- n
		}
	}
	return nil
}

func (s *notifyingStore) Announce(ctx context.Context, n core.Notice) error {
	a := ctx.Value(announcedKey{}).(*[]core.Notice)
	*a = append(*a, n)
	return nil
}

func (s *notifyingStore) Listen(ctx context.Context) (<-chan core.Notice, error) {
	in := make(chan core.Notice, 1024)
	out := make(chan core.Notice)
	s.mu.Lock()
	s.listeners = append(s.listeners, in)
	s.mu.Unlock()
	go func() {
		defer close(out)
		for {
			select {
			case n := <-in:
				select {
				case out <- n:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

var _ core.Notifier = (*notifyingStore)(nil)

// Two Services sharing a database: a push on one is announced to the
// subscribers of the other, through the store and only after the commit.
func TestNoticesFanOutThroughTheStore(t *testing.T) {
	ctx := t.Context()
	st := &notifyingStore{Store: newStore(t)}
	a := newServiceOn(t, st, nil)
	b := newServiceOn(t, st, nil)
	ch, err := b.Subscribe(ctx, []string{"note"})
	if err != nil {
		t.Fatal(err)
	}
	rec := mustApply(t, ctx, a, upsert("1", "note", "x", `{}`, time.Time{}))
	if n := <-ch; n.Kind != "note" || n.ID != "x" || !n.UpdatedAt.Equal(rec.UpdatedAt) {
		t.Fatalf("notice %+v, want note up to x", n)
	}
	// A push that writes nothing announces nothing: the next notice is the
	// one of the next write, made through the other Service.
	wantStatus(t, push1(t, ctx, a, upsert("2", "note", "x", `{}`, time.Time{})), core.StatusConflict)
	rec = mustApply(t, ctx, b, upsert("3", "note", "y", `{}`, time.Time{}))
	if n := <-ch; n.ID != "y" || !n.UpdatedAt.Equal(rec.UpdatedAt) {
		t.Fatalf("notice %+v, want note up to y", n)
	}
}
