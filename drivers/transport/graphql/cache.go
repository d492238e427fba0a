package graphql

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// queryCache keeps the parsed and validated documents of the last queries
// (a client sends the same few operations again and again). When full it
// starts over: simple, bounded, and the working set refills in one round.
type queryCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*ast.QueryDocument
}

var _ graphql.Cache[*ast.QueryDocument] = (*queryCache)(nil)

func newQueryCache(n int) *queryCache {
	return &queryCache{max: n, m: make(map[string]*ast.QueryDocument, n)}
}

func (c *queryCache) Get(_ context.Context, key string) (*ast.QueryDocument, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[key]
	return d, ok
}

func (c *queryCache) Add(_ context.Context, key string, d *ast.QueryDocument) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = d
}
