package core

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// StoreOpener opens a store from a driver-specific DSN and options.
type StoreOpener func(ctx context.Context, dsn string, opts map[string]any) (Store, error)

// TransportOpener opens a transport to an authority at url.
type TransportOpener func(ctx context.Context, url string, opts map[string]any) (Transport, error)

// ResolverOpener builds a resolver from its configuration.
type ResolverOpener func(ctx context.Context, opts map[string]any) (Resolver, error)

type registry[T any] struct {
	what string
	mu   sync.RWMutex
	m    map[string]T
}

func (r *registry[T]) register(name string, v T, isNil bool) {
	if name == "" {
		panic(fmt.Sprintf("offsync: Register%s with an empty name", r.what))
	}
	if isNil {
		panic(fmt.Sprintf("offsync: Register%s %q with a nil opener", r.what, name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(fmt.Sprintf("offsync: Register%s called twice for %q", r.what, name))
	}
	if r.m == nil {
		r.m = map[string]T{}
	}
	r.m[name] = v
}

func (r *registry[T]) lookup(name string) (T, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.m[name]
	if !ok {
		var zero T
		return zero, fmt.Errorf("%w: unknown %s driver %q (forgotten import?)", ErrUnknownDriver, r.what, name)
	}
	return v, nil
}

func (r *registry[T]) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.m))
	for k := range r.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var (
	stores     = &registry[StoreOpener]{what: "Store"}
	transports = &registry[TransportOpener]{what: "Transport"}
	resolvers  = &registry[ResolverOpener]{what: "Resolver"}
)

// RegisterStore makes a store driver available by name. It panics on an
// empty name, a nil opener or a name registered twice.
func RegisterStore(name string, open StoreOpener) { stores.register(name, open, open == nil) }

// RegisterTransport makes a transport driver available by name, with the
// same rules as RegisterStore.
func RegisterTransport(name string, open TransportOpener) {
	transports.register(name, open, open == nil)
}

// RegisterResolver makes a resolver driver available by name, with the same
// rules as RegisterStore.
func RegisterResolver(name string, open ResolverOpener) {
	resolvers.register(name, open, open == nil)
}

// OpenStore opens a store with the named driver.
func OpenStore(ctx context.Context, driver, dsn string, opts map[string]any) (Store, error) {
	open, err := stores.lookup(driver)
	if err != nil {
		return nil, err
	}
	return open(ctx, dsn, opts)
}

// OpenTransport opens a transport with the named driver.
func OpenTransport(ctx context.Context, driver, url string, opts map[string]any) (Transport, error) {
	open, err := transports.lookup(driver)
	if err != nil {
		return nil, err
	}
	return open(ctx, url, opts)
}

// OpenResolver builds a resolver with the named driver.
func OpenResolver(ctx context.Context, driver string, opts map[string]any) (Resolver, error) {
	open, err := resolvers.lookup(driver)
	if err != nil {
		return nil, err
	}
	return open(ctx, opts)
}

// StoreDrivers, TransportDrivers and ResolverDrivers list the registered names, sorted.
func StoreDrivers() []string     { return stores.names() }
func TransportDrivers() []string { return transports.names() }
func ResolverDrivers() []string  { return resolvers.names() }
