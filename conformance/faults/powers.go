package faults

import "github.com/offsync/offsync/core"

// The optional powers a wrapped transport keeps, as bits of a set.
const (
	hasGetter = 1 << iota
	hasSubscriber
	hasBatcher
	hasPipeliner
	hasStreamer
	powerSets = 1 << iota // how many sets there are
)

// powers are the optional interfaces of a wrapped transport, nil where the
// inner transport lacks them: the wrapper's own Get, Subscribe, BatchLimits
// and PullPages, which inject faults, and the inner PushDepth as it is.
type powers struct {
	g  core.Getter
	s  core.Subscriber
	b  core.Batcher
	p  core.Pipeliner
	ps core.PageStreamer
}

// set is the set of powers p holds.
func (p powers) set() int {
	n := 0
	for bit, has := range [...]bool{p.g != nil, p.s != nil, p.b != nil, p.p != nil, p.ps != nil} {
		if has {
			n |= 1 << bit
		}
	}
	return n
}

// base is what every wrapped transport has: the calls of core.Transport,
// and Unwrap.
type base interface {
	core.Transport
	Unwrapper
}

// Short names of the powers, embedded by the table below.
type (
	getter     = core.Getter
	subscriber = core.Subscriber
	batcher    = core.Batcher
	pipeliner  = core.Pipeliner
	streamer   = core.PageStreamer
)

// withPowers[set] returns b with exactly the powers of set, each one the
// method of p: a caller that discovers powers by type assertion sees through
// the wrapper the powers of the inner transport, no more and no fewer. Go
// builds a method set at compile time, so there is one struct type per set
// (TestPowerTable checks each against its index).
var withPowers = [powerSets]func(b base, p powers) core.Transport{
	0: func(b base, _ powers) core.Transport { return struct{ base }{b} },
	hasGetter: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
		}{b, p.g}
	},
	hasSubscriber: func(b base, p powers) core.Transport {
		return struct {
			base
			subscriber
		}{b, p.s}
	},
	hasGetter | hasSubscriber: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			subscriber
		}{b, p.g, p.s}
	},
	hasBatcher: func(b base, p powers) core.Transport {
		return struct {
			base
			batcher
		}{b, p.b}
	},
	hasGetter | hasBatcher: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			batcher
		}{b, p.g, p.b}
	},
	hasSubscriber | hasBatcher: func(b base, p powers) core.Transport {
		return struct {
			base
			subscriber
			batcher
		}{b, p.s, p.b}
	},
	hasGetter | hasSubscriber | hasBatcher: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			subscriber
			batcher
		}{b, p.g, p.s, p.b}
	},
	hasPipeliner: func(b base, p powers) core.Transport {
		return struct {
			base
			pipeliner
		}{b, p.p}
	},
	hasGetter | hasPipeliner: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			pipeliner
		}{b, p.g, p.p}
	},
	hasSubscriber | hasPipeliner: func(b base, p powers) core.Transport {
		return struct {
			base
			subscriber
			pipeliner
		}{b, p.s, p.p}
	},
	hasGetter | hasSubscriber | hasPipeliner: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			subscriber
			pipeliner
		}{b, p.g, p.s, p.p}
	},
	hasBatcher | hasPipeliner: func(b base, p powers) core.Transport {
		return struct {
			base
			batcher
			pipeliner
		}{b, p.b, p.p}
	},
	hasGetter | hasBatcher | hasPipeliner: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			batcher
			pipeliner
		}{b, p.g, p.b, p.p}
	},
	hasSubscriber | hasBatcher | hasPipeliner: func(b base, p powers) core.Transport {
		return struct {
			base
			subscriber
			batcher
			pipeliner
		}{b, p.s, p.b, p.p}
	},
	hasGetter | hasSubscriber | hasBatcher | hasPipeliner: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			subscriber
			batcher
			pipeliner
		}{b, p.g, p.s, p.b, p.p}
	},
	hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			streamer
		}{b, p.ps}
	},
	hasGetter | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			streamer
		}{b, p.g, p.ps}
	},
	hasSubscriber | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			subscriber
			streamer
		}{b, p.s, p.ps}
	},
	hasGetter | hasSubscriber | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			subscriber
			streamer
		}{b, p.g, p.s, p.ps}
	},
	hasBatcher | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			batcher
			streamer
		}{b, p.b, p.ps}
	},
	hasGetter | hasBatcher | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			batcher
			streamer
		}{b, p.g, p.b, p.ps}
	},
	hasSubscriber | hasBatcher | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			subscriber
			batcher
			streamer
		}{b, p.s, p.b, p.ps}
	},
	hasGetter | hasSubscriber | hasBatcher | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			subscriber
			batcher
			streamer
		}{b, p.g, p.s, p.b, p.ps}
	},
	hasPipeliner | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			pipeliner
			streamer
		}{b, p.p, p.ps}
	},
	hasGetter | hasPipeliner | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			pipeliner
			streamer
		}{b, p.g, p.p, p.ps}
	},
	hasSubscriber | hasPipeliner | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			subscriber
			pipeliner
			streamer
		}{b, p.s, p.p, p.ps}
	},
	hasGetter | hasSubscriber | hasPipeliner | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			subscriber
			pipeliner
			streamer
		}{b, p.g, p.s, p.p, p.ps}
	},
	hasBatcher | hasPipeliner | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			batcher
			pipeliner
			streamer
		}{b, p.b, p.p, p.ps}
	},
	hasGetter | hasBatcher | hasPipeliner | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			batcher
			pipeliner
			streamer
		}{b, p.g, p.b, p.p, p.ps}
	},
	hasSubscriber | hasBatcher | hasPipeliner | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			subscriber
			batcher
			pipeliner
			streamer
		}{b, p.s, p.b, p.p, p.ps}
	},
	hasGetter | hasSubscriber | hasBatcher | hasPipeliner | hasStreamer: func(b base, p powers) core.Transport {
		return struct {
			base
			getter
			subscriber
			batcher
			pipeliner
			streamer
		}{b, p.g, p.s, p.b, p.p, p.ps}
	},
}
