package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
)

// Fault is one kind of failure the wrappers can inject.
type Fault uint8

// The faults. See the package documentation for what each one models.
const (
	DropRequest  Fault = iota + 1 // the request never reaches the authority; the call fails
	DropAnswer                    // the authority processes the request; the answer is lost and the call fails
	Duplicate                     // the request is delivered twice; the caller gets the second answer
	Delay                         // the call is held before it is sent
	Reorder                       // Push: the batch's ops reach the authority in another order
	CutPage                       // Pull: the page is served, then the call fails
	TruncatePage                  // Pull: only the first Keep records arrive, with the full page's token
	ShortPage                     // Pull: only the first Keep records arrive, as a last page
	CloseStream                   // Notice: the stream is closed instead of delivering the notice
	Gap                           // Notice: the notice is lost and a Gap notice is delivered instead
	CutBody                       // HTTP: the response body ends with io.ErrUnexpectedEOF after Keep bytes
	numFaults
)

var faultNames = [numFaults]string{"", "drop_request", "drop_answer", "duplicate", "delay", "reorder",
	"cut_page", "truncate_page", "short_page", "close_stream", "gap", "cut_body"}

func (f Fault) String() string {
	if f > 0 && f < numFaults {
		return faultNames[f]
	}
	return fmt.Sprintf("fault(%d)", uint8(f))
}

// Method names the kind of call a rule applies to.
type Method string

// The methods the wrappers report. Notice is one notice delivered on a
// Subscribe stream; HTTP is one request through the RoundTripper wrapper;
// Conn is one Write on a connection wrapped by Conns.
const (
	Pull        Method = "Pull"
	Push        Method = "Push"
	Get         Method = "Get"
	Subscribe   Method = "Subscribe"
	BatchLimits Method = "BatchLimits"
	Notice      Method = "Notice"
	HTTP        Method = "HTTP"
	Conn        Method = "Conn"
)

var methods = []Method{Pull, Push, Get, Subscribe, BatchLimits, Notice, HTTP, Conn}

// applies says which faults make sense for which method.
var applies = map[Method][]Fault{
	Pull:        {DropRequest, DropAnswer, Duplicate, Delay, CutPage, TruncatePage, ShortPage},
	Push:        {DropRequest, DropAnswer, Duplicate, Delay, Reorder},
	Get:         {DropRequest, DropAnswer, Duplicate, Delay},
	BatchLimits: {DropRequest, DropAnswer, Delay},
	Subscribe:   {DropRequest, Delay},
	Notice:      {Delay, CloseStream, Gap},
	HTTP:        {DropRequest, DropAnswer, Duplicate, Delay, CutBody},
	Conn:        {DropRequest, DropAnswer, Delay, CutBody},
}

func applicable(f Fault, m Method) bool { return slices.Contains(applies[m], f) }

// Call describes one call through a wrapper, as a rule's Match sees it.
// Slices and the request belong to the caller: a predicate must not modify
// them.
type Call struct {
	Method  Method
	N       int64            // 1-based index of this call among the injector's calls of Method
	Kind    string           // Pull, Get, Notice: the kind
	ID      string           // Get, Notice: the record id
	Pull    core.PullRequest // Pull: the request (in a stream, the one that would have asked for the page)
	Ops     []core.Op        // Push: the batch
	Kinds   []string         // Subscribe: the kinds
	Notice  core.Notice      // Notice: the notice about to be delivered
	Request *http.Request    // HTTP: the request about to be sent
	// StreamPage is, for a Pull that is a page of a PullPages stream, the
	// page's position in the stream (1 for the first, decided before the
	// stream opens); 0 for a Pull call.
	StreamPage int
}

// ContainsOp returns a Match predicate that selects the Push calls whose
// batch holds an op for which match returns true.
func ContainsOp(match func(core.Op) bool) func(Call) bool {
	return func(c Call) bool { return slices.ContainsFunc(c.Ops, match) }
}

// Rule injects one fault into the calls it selects. A call is selected when
// its method is Method (any method the fault applies to when Method is
// empty), it is the Nth call of that method (when Nth > 0), Match returns
// true (when set), the rule has fired fewer than Times times (when Times > 0),
// and a draw from the injector's seeded generator falls under Chance (when
// Chance > 0; zero means always).
type Rule struct {
	Fault  Fault
	Method Method
	Nth    int64
	Match  func(Call) bool // called with the injector's lock held: must not call the injector
	Chance float64
	Times  int

	// Delay: how long the call is held, and/or a channel that releases it
	// (closed or sent to). The caller's ctx always ends the wait early.
	Delay   time.Duration
	Release <-chan struct{}

	// TruncatePage, ShortPage: how many records are kept. CutBody: how many
	// bytes of the body are delivered. A negative Keep picks a number at
	// random from [0, n), n being the page's records or the body's length
	// (512 when the length is unknown).
	Keep int
}

func (r *Rule) validate() error {
	if r.Fault == 0 || r.Fault >= numFaults {
		return fmt.Errorf("faults: unknown fault %d: %w", uint8(r.Fault), core.ErrInvalid)
	}
	if r.Method != "" {
		if !slices.Contains(methods, r.Method) {
			return fmt.Errorf("faults: unknown method %q: %w", r.Method, core.ErrInvalid)
		}
		if !applicable(r.Fault, r.Method) {
			return fmt.Errorf("faults: %s does not apply to %s: %w", r.Fault, r.Method, core.ErrInvalid)
		}
	}
	if r.Nth < 0 || (r.Nth > 0 && r.Method == "") {
		return fmt.Errorf("faults: %s rule: Nth must be positive and needs a Method: %w", r.Fault, core.ErrInvalid)
	}
	if r.Chance < 0 || r.Chance > 1 {
		return fmt.Errorf("faults: %s rule: Chance %v is outside [0, 1]: %w", r.Fault, r.Chance, core.ErrInvalid)
	}
	if r.Times < 0 {
		return fmt.Errorf("faults: %s rule: negative Times: %w", r.Fault, core.ErrInvalid)
	}
	if r.Delay < 0 {
		return fmt.Errorf("faults: %s rule: negative Delay: %w", r.Fault, core.ErrInvalid)
	}
	if r.Fault == Delay && r.Delay == 0 && r.Release == nil {
		return fmt.Errorf("faults: delay rule needs a Delay or a Release channel: %w", core.ErrInvalid)
	}
	return nil
}

// Options configure an Injector.
type Options struct {
	// Seed seeds the generator behind Chance, reorders and random Keep
	// values: the same seed and the same sequence of calls inject the same
	// faults.
	Seed uint64
	// Rules are consulted in order for every call; every rule that selects
	// the call fires (at most one rule per fault: the first).
	Rules []Rule
	// Checkpoint, when set, is called by the wrappers around each write:
	// with AfterRequestSent once a Push is on its way (before the inner
	// transport gets it, dropped requests included) or a non-GET HTTP
	// request is written, and with AfterAuthorityCommit when the inner call
	// succeeded, before the caller sees its answer. Pulls, gets and GET
	// requests hit no point. Crasher.Checkpoint fits here.
	Checkpoint func(point string)
}

// Injector decides which faults each call gets and counts them. One
// Injector may serve several wrappers; it is safe for concurrent use.
type Injector struct {
	checkpoint func(point string)

	mu       sync.Mutex
	rng      *rand.Rand
	rules    []rule
	disabled bool
	calls    map[Method]int64
	injected [numFaults]int64
}

type rule struct {
	Rule
	fired int
}

// New returns an Injector for opts. A malformed rule is an error wrapping
// core.ErrInvalid.
func New(opts Options) (*Injector, error) {
	inj := &Injector{
		checkpoint: opts.Checkpoint,
		rng:        rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		calls:      map[Method]int64{},
	}
	if err := inj.Add(opts.Rules...); err != nil {
		return nil, err
	}
	return inj, nil
}

// Add appends rules; none is added when one is malformed (an error wrapping
// core.ErrInvalid).
func (inj *Injector) Add(rules ...Rule) error {
	for i := range rules {
		if err := rules[i].validate(); err != nil {
			return fmt.Errorf("rule %d: %w", i, err)
		}
	}
	inj.mu.Lock()
	defer inj.mu.Unlock()
	for _, r := range rules {
		inj.rules = append(inj.rules, rule{Rule: r})
	}
	return nil
}

// SetEnabled turns injection on or off (it starts on). While off, calls go
// straight through and are still counted, but no rule fires or draws: a test
// turns faults off to let replicas converge.
func (inj *Injector) SetEnabled(on bool) {
	inj.mu.Lock()
	inj.disabled = !on
	inj.mu.Unlock()
}

// Stats is a snapshot of an Injector's counters.
type Stats struct {
	Calls    map[Method]int64 // calls seen, per method
	Injected map[Fault]int64  // faults that took effect
}

// Total returns the number of faults that took effect.
func (s Stats) Total() int64 {
	var n int64
	for _, v := range s.Injected {
		n += v
	}
	return n
}

// String renders the counters in a fixed order, for logs.
func (s Stats) String() string {
	var b strings.Builder
	b.WriteString("calls:")
	for _, m := range methods {
		if n := s.Calls[m]; n > 0 {
			fmt.Fprintf(&b, " %s=%d", m, n)
		}
	}
	b.WriteString(" injected:")
	none := true
	for f := Fault(1); f < numFaults; f++ {
		if n := s.Injected[f]; n > 0 {
			fmt.Fprintf(&b, " %s=%d", f, n)
			none = false
		}
	}
	if none {
		b.WriteString(" none")
	}
	return b.String()
}

// Stats returns a snapshot of the counters.
func (inj *Injector) Stats() Stats {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	s := Stats{Calls: map[Method]int64{}, Injected: map[Fault]int64{}}
	for m, n := range inj.calls {
		s.Calls[m] = n
	}
	for f, n := range inj.injected {
		if n > 0 {
			s.Injected[Fault(f)] = n
		}
	}
	return s
}

// count records that f took effect.
func (inj *Injector) count(f Fault) {
	inj.mu.Lock()
	inj.injected[f]++
	inj.mu.Unlock()
}

func (inj *Injector) check(point string) {
	if inj.checkpoint != nil {
		inj.checkpoint(point)
	}
}

// firing is one fault chosen for a call, with its parameters.
type firing struct {
	rule *Rule
	draw uint64 // for reorders and random Keep values, drawn when the call was decided
}

// decision is the set of faults chosen for one call.
type decision [numFaults]*firing

func (d *decision) has(f Fault) bool { return d[f] != nil }

// keep returns how many of n items a TruncatePage/ShortPage/CutBody fault
// keeps.
func (d *decision) keep(f Fault, n int) int {
	fr := d[f]
	if fr.rule.Keep >= 0 {
		return fr.rule.Keep
	}
	if n <= 0 {
		return 0
	}
	return int(fr.draw % uint64(n))
}

// decide numbers the call and chooses its faults.
func (inj *Injector) decide(c *Call) *decision {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	inj.calls[c.Method]++
	c.N = inj.calls[c.Method]
	d := new(decision)
	if inj.disabled {
		return d
	}
	for i := range inj.rules {
		r := &inj.rules[i]
		if d[r.Fault] != nil || !applicable(r.Fault, c.Method) ||
			(r.Method != "" && r.Method != c.Method) ||
			(r.Nth > 0 && r.Nth != c.N) ||
			(r.Times > 0 && r.fired >= r.Times) ||
			(r.Match != nil && !r.Match(*c)) {
			continue
		}
		if r.Chance > 0 && inj.rng.Float64() >= r.Chance {
			continue
		}
		r.fired++
		fr := &firing{rule: &r.Rule}
		if r.Fault == Reorder || r.Keep < 0 {
			fr.draw = inj.rng.Uint64()
		}
		d[r.Fault] = fr
	}
	return d
}

// hold waits as a Delay fault says, or until ctx is done.
func (inj *Injector) hold(ctx context.Context, d *decision) error {
	fr := d[Delay]
	if fr == nil {
		return nil
	}
	inj.count(Delay)
	var timer <-chan time.Time
	if fr.rule.Delay > 0 {
		t := time.NewTimer(fr.rule.Delay)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
	case <-fr.rule.Release:
	case <-ctx.Done():
		return fmt.Errorf("faults: delayed call cancelled: %w: %w", core.ErrUnavailable, ctx.Err())
	}
	return nil
}

// errDropped is the error of a call whose request or answer was dropped.
func dropped(f Fault, m Method) error {
	return fmt.Errorf("faults: %s injected into %s: %w", f, m, core.ErrUnavailable)
}
