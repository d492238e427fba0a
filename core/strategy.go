package core

import "context"

type namedResolver struct {
	name string
	fn   func(ctx context.Context, c Conflict) (Resolution, error)
}

func (r namedResolver) Resolve(ctx context.Context, c Conflict) (Resolution, error) {
	return r.fn(ctx, c)
}
func (r namedResolver) StrategyName() string { return r.name }

// ServerWins drops the local change: the row takes the server's version.
var ServerWins Resolver = namedResolver{"serverWins", func(context.Context, Conflict) (Resolution, error) {
	return AcceptServer, nil
}}

// ClientWins pushes the local change again, forced.
var ClientWins Resolver = namedResolver{"clientWins", func(context.Context, Conflict) (Resolution, error) {
	return AcceptClient, nil
}}

// AutoPreserve is the default strategy (replaced by the three-way merge).
var AutoPreserve Resolver = namedResolver{"autoPreserve", func(_ context.Context, c Conflict) (Resolution, error) {
	if c.Server == nil || c.Local == nil {
		return AcceptServer, nil
	}
	s, err := c.Server.Fields()
	if err != nil {
		return Resolution{}, err
	}
	l, err := c.Local.Fields()
	if err != nil {
		return Resolution{}, err
	}
	for k, v := range l {
		s[k] = v
	}
	return AcceptMerged(s), nil
}}
