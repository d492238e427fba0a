package contract

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/offsync/offsync/core"
)

// ClientConfig names the server RunClient checks and how to reach it: any
// client transport, opened once per principal.
type ClientConfig struct {
	// Open opens a client transport to the server as the principal of
	// token ("" for none). RunClient closes what it opens when it
	// implements io.Closer. Required.
	Open func(ctx context.Context, token string) (core.Transport, error)
	// Token is the principal of the checks.
	Token string
	// Token2 is a second principal's token, for scope invisibility; the
	// check is skipped without it. Its principal must not see Token's rows.
	Token2 string
	// Kind is the kind the checks write to (default "conformance").
	Kind string
	// UnknownKind is a kind the server does not serve (default
	// "offsync_unknown_kind"); the check is skipped when the server serves it.
	UnknownKind string
	// NoticeTimeout bounds the wait for a change notice after a push, when
	// the client is a core.Subscriber (default 10 s).
	NoticeTimeout time.Duration
}

// RunClient runs the checks that mean the same on every wire form through a
// client transport: core.Transport and, when the client has them, the
// core.Getter, core.Subscriber and core.Batcher upgrades. It calls report
// (when set) as each check ends and returns the results, named like Run's
// where the check is the same. Its error is for a bad ClientConfig (wrapping
// core.ErrInvalid) or a client that cannot be opened for Token; a server that
// does not answer fails checks.
func RunClient(ctx context.Context, cfg ClientConfig, report func(Result)) ([]Result, error) {
	if cfg.Open == nil {
		return nil, fmt.Errorf("contract: %w: ClientConfig.Open is required", core.ErrInvalid)
	}
	if cfg.Kind == "" {
		cfg.Kind = "conformance"
	}
	if err := core.CheckKind(cfg.Kind); err != nil {
		return nil, fmt.Errorf("contract: kind: %w", err)
	}
	if cfg.UnknownKind == "" {
		cfg.UnknownKind = "offsync_unknown_kind"
	}
	if err := core.CheckKind(cfg.UnknownKind); err != nil {
		return nil, fmt.Errorf("contract: unknown kind: %w", err)
	}
	if cfg.NoticeTimeout <= 0 {
		cfg.NoticeTimeout = 10 * time.Second
	}
	tr, err := cfg.Open(ctx, cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("contract: open the client: %w", err)
	}
	if tr == nil {
		return nil, fmt.Errorf("contract: %w: Open returned no transport", core.ErrInvalid)
	}
	defer closeTransport(tr)
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &clientChecker{cfg: cfg, tr: tr, prefix: "t" + hex.EncodeToString(b[:]) + "-"}
	var out []Result
	for _, ch := range clientChecks {
		r := runProtected(ch.name, func() (Status, string) { return ch.fn(c, ctx) })
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	return out, nil
}

type clientCheck struct {
	name string
	fn   func(c *clientChecker, ctx context.Context) (Status, string)
}

var clientChecks = []clientCheck{
	{"client-upgrades", (*clientChecker).upgrades},
	{"batch-limits", (*clientChecker).batchLimits},
	{"create", (*clientChecker).create},
	{"microsecond-timestamps", (*clientChecker).microseconds},
	{"update-on-returned-version", (*clientChecker).updateOnCurrent},
	{"conflict-on-stale-base", (*clientChecker).staleBase},
	{"conflict-on-create-over-existing", (*clientChecker).createOverExisting},
	{"idempotent-replay", (*clientChecker).replay},
	{"idempotency-key-reuse", (*clientChecker).keyReuse},
	{"forced-retry-after-conflict", (*clientChecker).retryAfterConflict},
	{"keyset-paging-with-writes", (*clientChecker).paging},
	{"tombstones", (*clientChecker).tombstones},
	{"delete-without-base-conflicts", (*clientChecker).deleteNoBase},
	{"delete-missing-not-found", (*clientChecker).deleteMissing},
	{"get", (*clientChecker).get},
	{"scope-invisibility", (*clientChecker).scope},
	{"bad-page-token", (*clientChecker).badToken},
	{"unknown-kind", (*clientChecker).unknownKind},
	{"subscribe", (*clientChecker).subscribe},
}

// runProtected runs one check, turning a failf inside it into a FAIL.
func runProtected(name string, fn func() (Status, string)) (r Result) {
	r.Name = name
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(failure)
			if !ok {
				panic(p)
			}
			r.Status, r.Detail = Fail, f.detail
		}
	}()
	r.Status, r.Detail = fn()
	return r
}

func closeTransport(tr core.Transport) {
	if cl, ok := tr.(io.Closer); ok {
		_ = cl.Close()
	}
}

type clientChecker struct {
	cfg    ClientConfig
	tr     core.Transport
	prefix string
	n      int
}

func (c *clientChecker) id(name string) string {
	c.n++
	return fmt.Sprintf("%s%s-%d", c.prefix, name, c.n)
}

func (c *clientChecker) opID() string {
	c.n++
	return fmt.Sprintf("%sop-%d", c.prefix, c.n)
}

func (c *clientChecker) upsert(id string, fields map[string]any, base time.Time) core.Op {
	b, err := json.Marshal(fields)
	if err != nil {
		failf("encode %v: %v", fields, err)
	}
	return core.Op{OpID: c.opID(), Kind: c.cfg.Kind, ID: id, Type: core.OpUpsert, Payload: b, BaseUpdatedAt: base}
}

func (c *clientChecker) delete(id string, base time.Time) core.Op {
	return core.Op{OpID: c.opID(), Kind: c.cfg.Kind, ID: id, Type: core.OpDelete, BaseUpdatedAt: base}
}

// describe renders a push result for a detail line.
func describe(r core.PushResult) string {
	s := r.Status.String()
	if r.Record != nil {
		s += fmt.Sprintf(" (record %s @%s", r.Record.ID, core.FormatTime(r.Record.UpdatedAt))
		if r.Record.Deleted() {
			s += ", deleted"
		}
		s += ")"
	}
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

// push1 pushes one op through tr and returns its result, or fails the check.
func push1(ctx context.Context, tr core.Transport, op core.Op) core.PushResult {
	res, err := tr.Push(ctx, []core.Op{op})
	if err != nil {
		failf("push %s %s/%s: %v", op.Type, op.Kind, op.ID, err)
	}
	if len(res) != 1 {
		failf("push of one op answered %d results, want exactly one", len(res))
	}
	if res[0].OpID != "" && res[0].OpID != op.OpID {
		failf("push of op %s answered a result for op %s", op.OpID, res[0].OpID)
	}
	return res[0]
}

// applied returns the stored record of an Applied result, or fails the check.
func applied(what string, op core.Op, r core.PushResult) core.Record {
	if r.Status != core.StatusApplied {
		failf("%s answered %s, want applied", what, describe(r))
	}
	if r.Record == nil {
		failf("%s was applied without the stored record", what)
	}
	if r.Record.ID != op.ID || (r.Record.Kind != "" && r.Record.Kind != op.Kind) {
		failf("%s answered the record %s/%s, want %s/%s", what, r.Record.Kind, r.Record.ID, op.Kind, op.ID)
	}
	if r.Record.UpdatedAt.IsZero() {
		failf("%s answered a record without UpdatedAt", what)
	}
	return *r.Record
}

// created creates a record and returns it, or fails the check.
func (c *clientChecker) created(ctx context.Context, name string, fields map[string]any) core.Record {
	op := c.upsert(c.id(name), fields, time.Time{})
	return applied("create "+op.ID, op, push1(ctx, c.tr, op))
}

// field returns a business field of r as text ("" when absent).
func field(r core.Record, name string) string {
	m, err := r.Fields()
	if err != nil {
		failf("record %s: data: %v", r.ID, err)
	}
	if v, ok := m[name]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

// walk pulls the kind through tr from after (inclusive of rows at
// after.UpdatedAt when after.ID is empty) to the end of the feed, and
// returns every record served, in order.
func (c *clientChecker) walk(ctx context.Context, tr core.Transport, after core.Cursor) []core.Record {
	var all []core.Record
	req := core.PullRequest{Kind: c.cfg.Kind, After: after, Limit: 100}
	for page := 0; ; page++ {
		if page > 100 {
			failf("a pull walk did not end after 100 pages")
		}
		p, err := tr.Pull(ctx, req)
		if err != nil {
			failf("pull %s: %v", c.cfg.Kind, err)
		}
		all = append(all, p.Records...)
		if p.NextPageToken == "" || len(p.Records) == 0 {
			return all
		}
		last := p.Records[len(p.Records)-1]
		req = core.PullRequest{Kind: c.cfg.Kind, After: core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}, PageToken: p.NextPageToken, Limit: 100}
	}
}

// latest returns id's newest version in the feed from since on, and whether
// the feed has it.
func (c *clientChecker) latest(ctx context.Context, tr core.Transport, id string, since time.Time) (core.Record, bool) {
	var found core.Record
	ok := false
	for _, r := range c.walk(ctx, tr, core.Cursor{UpdatedAt: since}) {
		if r.ID == id {
			found, ok = r, true
		}
	}
	return found, ok
}

// mustLatest is latest for a record that must be in the feed.
func (c *clientChecker) mustLatest(ctx context.Context, id string, since time.Time) core.Record {
	r, ok := c.latest(ctx, c.tr, id, since)
	if !ok {
		failf("record %s is missing from a pull from %s", id, core.FormatTime(since))
	}
	return r
}

func (c *clientChecker) upgrades(ctx context.Context) (Status, string) {
	var has []string
	if _, ok := c.tr.(core.Getter); ok {
		has = append(has, "Getter")
	}
	if _, ok := c.tr.(core.Subscriber); ok {
		has = append(has, "Subscriber")
	}
	if _, ok := c.tr.(core.Batcher); ok {
		has = append(has, "Batcher")
	}
	if len(has) == 0 {
		return Pass, fmt.Sprintf("%T: Pull and Push only; the checks of the upgrades are skipped", c.tr)
	}
	return Pass, fmt.Sprintf("%T: Pull, Push, %s", c.tr, strings.Join(has, ", "))
}

func (c *clientChecker) batchLimits(ctx context.Context) (Status, string) {
	b, ok := c.tr.(core.Batcher)
	if !ok {
		return Skip, "the client is not a core.Batcher"
	}
	l, err := b.BatchLimits(ctx)
	if err != nil {
		return Fail, fmt.Sprintf("BatchLimits: %v", err)
	}
	if l.MaxOps <= 0 {
		return Fail, fmt.Sprintf("BatchLimits answered MaxOps %d, want a positive number of ops per push", l.MaxOps)
	}
	if l.MaxLimit < 0 {
		return Fail, fmt.Sprintf("BatchLimits answered MaxLimit %d, want a positive page cap (or 0: unknown)", l.MaxLimit)
	}
	if l.MaxLimit == 0 {
		return Pass, fmt.Sprintf("MaxOps %d; the page cap is not advertised", l.MaxOps)
	}
	return Pass, fmt.Sprintf("MaxOps %d, MaxLimit %d", l.MaxOps, l.MaxLimit)
}

func (c *clientChecker) create(ctx context.Context) (Status, string) {
	r := c.created(ctx, "create", map[string]any{"title": "created"})
	if got := field(r, "title"); got != "created" {
		return Fail, fmt.Sprintf("the applied answer has title %q, want the stored record's \"created\"", got)
	}
	f := c.mustLatest(ctx, r.ID, r.UpdatedAt)
	if !f.UpdatedAt.Equal(r.UpdatedAt) || field(f, "title") != "created" || f.Deleted() {
		return Fail, fmt.Sprintf("a pull serves %s @%s title %q, want the applied record @%s",
			f.ID, core.FormatTime(f.UpdatedAt), field(f, "title"), core.FormatTime(r.UpdatedAt))
	}
	return Pass, "a push without a base creates; the answer and a pull carry the stored record"
}

func (c *clientChecker) microseconds(ctx context.Context) (Status, string) {
	var prev core.Record
	anyFraction := false
	for i := range 5 {
		r := c.created(ctx, "micro", map[string]any{"i": i})
		if r.UpdatedAt.Nanosecond()%1000 != 0 {
			return Fail, fmt.Sprintf("UpdatedAt %s is finer than a microsecond: versions are microseconds", r.UpdatedAt.Format(time.RFC3339Nano))
		}
		if r.UpdatedAt.Nanosecond() != 0 {
			anyFraction = true
		}
		if i > 0 && !r.UpdatedAt.After(prev.UpdatedAt) {
			return Fail, fmt.Sprintf("two successive writes got UpdatedAt %s then %s: versions must strictly increase (truncated timestamps?)",
				core.FormatTime(prev.UpdatedAt), core.FormatTime(r.UpdatedAt))
		}
		prev = r
	}
	if !anyFraction {
		return Fail, "five writes all got whole-second UpdatedAt values: timestamps are truncated"
	}
	if f := c.mustLatest(ctx, prev.ID, prev.UpdatedAt); !f.UpdatedAt.Equal(prev.UpdatedAt) {
		return Fail, fmt.Sprintf("the push answered UpdatedAt %s, a pull serves %s: a timestamp lost precision on the way",
			core.FormatTime(prev.UpdatedAt), core.FormatTime(f.UpdatedAt))
	}
	return Pass, fmt.Sprintf("UpdatedAt keeps microseconds (%s) and strictly increases", core.FormatTime(prev.UpdatedAt))
}

func (c *clientChecker) updateOnCurrent(ctx context.Context) (Status, string) {
	r := c.created(ctx, "upd", map[string]any{"v": 1})
	op := c.upsert(r.ID, map[string]any{"v": 2}, r.UpdatedAt)
	res := push1(ctx, c.tr, op)
	if res.Status != core.StatusApplied {
		return Fail, fmt.Sprintf("an update based on the version the push answered (%s) answered %s, want applied: the base lost precision on the way",
			core.FormatTime(r.UpdatedAt), describe(res))
	}
	if n := applied("update", op, res); !n.UpdatedAt.After(r.UpdatedAt) {
		return Fail, fmt.Sprintf("the update's UpdatedAt %s is not after %s", core.FormatTime(n.UpdatedAt), core.FormatTime(r.UpdatedAt))
	}
	return Pass, "an update on the returned version is applied"
}

func (c *clientChecker) staleBase(ctx context.Context) (Status, string) {
	r := c.created(ctx, "stale", map[string]any{"v": 1})
	op := c.upsert(r.ID, map[string]any{"v": 2}, r.UpdatedAt)
	cur := applied("update", op, push1(ctx, c.tr, op))
	res := push1(ctx, c.tr, c.upsert(r.ID, map[string]any{"v": 3}, r.UpdatedAt))
	if res.Status != core.StatusConflict {
		return Fail, fmt.Sprintf("an update on a stale base answered %s, want conflict", describe(res))
	}
	if res.Record == nil || !res.Record.UpdatedAt.Equal(cur.UpdatedAt) || field(*res.Record, "v") != "2" {
		return Fail, fmt.Sprintf("the conflict does not carry the current record @%s with v=2: %s", core.FormatTime(cur.UpdatedAt), describe(res))
	}
	if f := c.mustLatest(ctx, r.ID, r.UpdatedAt); field(f, "v") != "2" || !f.UpdatedAt.Equal(cur.UpdatedAt) {
		return Fail, fmt.Sprintf("the conflicting write changed the record: v=%s @%s", field(f, "v"), core.FormatTime(f.UpdatedAt))
	}
	return Pass, "a stale base is a conflict with the current record; nothing written"
}

func (c *clientChecker) createOverExisting(ctx context.Context) (Status, string) {
	r := c.created(ctx, "dup", map[string]any{"v": 1})
	res := push1(ctx, c.tr, c.upsert(r.ID, map[string]any{"v": 2}, time.Time{}))
	if res.Status != core.StatusConflict {
		return Fail, fmt.Sprintf("a push without a base on an existing record answered %s, want conflict (nothing is overwritten silently)", describe(res))
	}
	if res.Record == nil || !res.Record.UpdatedAt.Equal(r.UpdatedAt) {
		return Fail, fmt.Sprintf("the conflict does not carry the current record @%s: %s", core.FormatTime(r.UpdatedAt), describe(res))
	}
	return Pass, "a create over an existing record is a conflict"
}

func (c *clientChecker) replay(ctx context.Context) (Status, string) {
	op := c.upsert(c.id("replay"), map[string]any{"v": 1}, time.Time{})
	first := applied("create "+op.ID, op, push1(ctx, c.tr, op))
	again := push1(ctx, c.tr, op)
	if again.Status != core.StatusApplied || again.Record == nil {
		return Fail, fmt.Sprintf("the same op (OpID %s) sent again answered %s, first applied: want the first answer", op.OpID, describe(again))
	}
	if !again.Record.UpdatedAt.Equal(first.UpdatedAt) {
		return Fail, fmt.Sprintf("the same op sent again answered UpdatedAt %s, the first answer %s: the op was applied twice",
			core.FormatTime(again.Record.UpdatedAt), core.FormatTime(first.UpdatedAt))
	}
	if f := c.mustLatest(ctx, op.ID, first.UpdatedAt); !f.UpdatedAt.Equal(first.UpdatedAt) {
		return Fail, fmt.Sprintf("after the replay a pull serves the record @%s, want @%s: the op was applied twice",
			core.FormatTime(f.UpdatedAt), core.FormatTime(first.UpdatedAt))
	}
	return Pass, "the same OpID sent again answers the first answer and writes once"
}

func (c *clientChecker) keyReuse(ctx context.Context) (Status, string) {
	op := c.upsert(c.id("reuse"), map[string]any{"v": 1}, time.Time{})
	first := applied("create "+op.ID, op, push1(ctx, c.tr, op))
	other := c.upsert(c.id("reuse-other"), map[string]any{"v": 2}, time.Time{})
	other.OpID = op.OpID
	res := push1(ctx, c.tr, other)
	if res.Status != core.StatusRejected {
		return Fail, fmt.Sprintf("the same OpID with another op answered %s, want rejected", describe(res))
	}
	if _, ok := c.latest(ctx, c.tr, other.ID, first.UpdatedAt); ok {
		return Fail, fmt.Sprintf("the refused op still wrote %s", other.ID)
	}
	if f := c.mustLatest(ctx, op.ID, first.UpdatedAt); !f.UpdatedAt.Equal(first.UpdatedAt) {
		return Fail, "the reused OpID changed the first record"
	}
	return Pass, "the same OpID with another op is rejected and writes nothing"
}

func (c *clientChecker) retryAfterConflict(ctx context.Context) (Status, string) {
	r := c.created(ctx, "retry", map[string]any{"v": 1})
	upd := c.upsert(r.ID, map[string]any{"v": 2}, r.UpdatedAt)
	applied("update", upd, push1(ctx, c.tr, upd))
	op := c.upsert(r.ID, map[string]any{"v": 3}, r.UpdatedAt)
	if res := push1(ctx, c.tr, op); res.Status != core.StatusConflict {
		return Fail, fmt.Sprintf("an update on a stale base answered %s, want conflict", describe(res))
	}
	op.Force = true
	res := push1(ctx, c.tr, op)
	if res.Status == core.StatusConflict {
		return Fail, "the forced retry of a conflicted op (same OpID) answered conflict again: the conflict is kept under the OpID, so the retry fails forever"
	}
	n := applied("the forced retry of a conflicted op (same OpID)", op, res)
	if f := c.mustLatest(ctx, r.ID, n.UpdatedAt); field(f, "v") != "3" {
		return Fail, fmt.Sprintf("after the forced retry the record has v=%s, want 3", field(f, "v"))
	}
	return Pass, "a conflict is not kept: the forced retry under the same OpID is applied"
}

func (c *clientChecker) paging(ctx context.Context) (Status, string) {
	var rows []core.Record
	for i := range 6 {
		rows = append(rows, c.created(ctx, fmt.Sprintf("page%d", i), map[string]any{"i": i}))
	}
	const limit = 2
	req := core.PullRequest{Kind: c.cfg.Kind, After: core.Cursor{UpdatedAt: rows[0].UpdatedAt}, Limit: limit}
	seen := map[string]time.Time{}
	var prev *core.Record
	var newID string
	var updated core.Record
	for page := 0; ; page++ {
		if page > 50 {
			return Fail, "the walk did not end after 50 pages"
		}
		p, err := c.tr.Pull(ctx, req)
		if err != nil {
			return Fail, fmt.Sprintf("page %d: %v", page+1, err)
		}
		if len(p.Records) > limit {
			return Fail, fmt.Sprintf("page %d has %d records, over the limit %d", page+1, len(p.Records), limit)
		}
		for i := range p.Records {
			r := &p.Records[i]
			if r.UpdatedAt.Before(rows[0].UpdatedAt) {
				return Fail, fmt.Sprintf("page %d serves %s @%s, before the walk's start %s", page+1, r.ID,
					core.FormatTime(r.UpdatedAt), core.FormatTime(rows[0].UpdatedAt))
			}
			if prev != nil && !(core.Cursor{UpdatedAt: prev.UpdatedAt, ID: prev.ID}).Before(r.UpdatedAt, r.ID) {
				return Fail, fmt.Sprintf("page %d serves %s @%s after %s @%s: a walk is strictly ordered by (UpdatedAt, ID)",
					page+1, r.ID, core.FormatTime(r.UpdatedAt), prev.ID, core.FormatTime(prev.UpdatedAt))
			}
			prev = r
			if t, ok := seen[r.ID]; !ok || r.UpdatedAt.After(t) {
				seen[r.ID] = r.UpdatedAt
			}
		}
		if page == 0 {
			// During the walk: an already served row moves to the end, and a
			// new row is added.
			op := c.upsert(rows[0].ID, map[string]any{"i": 100}, rows[0].UpdatedAt)
			updated = applied("update during the walk", op, push1(ctx, c.tr, op))
			newID = c.created(ctx, "page-new", map[string]any{"i": 6}).ID
		}
		if p.NextPageToken == "" || len(p.Records) == 0 {
			break
		}
		req = core.PullRequest{Kind: c.cfg.Kind, After: core.Cursor{UpdatedAt: prev.UpdatedAt, ID: prev.ID}, PageToken: p.NextPageToken, Limit: limit}
	}
	var missing []string
	for _, r := range rows[1:] {
		if _, ok := seen[r.ID]; !ok {
			missing = append(missing, r.ID)
		}
	}
	if len(missing) > 0 {
		return Fail, fmt.Sprintf("rows %v written before the walk were skipped while rows were written during it: page tokens must be keyset positions, not offsets", missing)
	}
	if _, ok := seen[newID]; !ok {
		return Fail, "a row created during the walk never appeared in it"
	}
	if !seen[rows[0].ID].Equal(updated.UpdatedAt) {
		return Fail, "a row updated during the walk did not reappear with its new version"
	}
	return Pass, fmt.Sprintf("a walk with limit %d saw every row in (UpdatedAt, ID) order, and the rows written during it", limit)
}

func (c *clientChecker) tombstones(ctx context.Context) (Status, string) {
	r := c.created(ctx, "tomb", map[string]any{"v": 1})
	op := c.delete(r.ID, r.UpdatedAt)
	res := push1(ctx, c.tr, op)
	if res.Status != core.StatusApplied {
		return Fail, fmt.Sprintf("a delete with the current base answered %s, want applied", describe(res))
	}
	if res.Record != nil && (!res.Record.Deleted() || !res.Record.UpdatedAt.After(r.UpdatedAt)) {
		return Fail, fmt.Sprintf("the delete answered %s, want a tombstone with a newer UpdatedAt", describe(res))
	}
	f, ok := c.latest(ctx, c.tr, r.ID, r.UpdatedAt)
	if !ok || !f.Deleted() {
		return Fail, "the tombstone is missing from a pull: other clients never learn of the delete"
	}
	if !f.UpdatedAt.After(r.UpdatedAt) {
		return Fail, fmt.Sprintf("the tombstone has UpdatedAt %s, not after the record's %s", core.FormatTime(f.UpdatedAt), core.FormatTime(r.UpdatedAt))
	}
	if g, isGetter := c.tr.(core.Getter); isGetter {
		got, err := g.Get(ctx, c.cfg.Kind, r.ID)
		if err != nil {
			return Fail, fmt.Sprintf("Get of a deleted record: %v, want the tombstone (hard delete?)", err)
		}
		if !got.Deleted() || !got.UpdatedAt.Equal(f.UpdatedAt) {
			return Fail, fmt.Sprintf("Get of a deleted record answered @%s deleted=%v, want the tombstone @%s",
				core.FormatTime(got.UpdatedAt), got.Deleted(), core.FormatTime(f.UpdatedAt))
		}
		return Pass, "a delete is a tombstone in pulls and in Get"
	}
	return Pass, "a delete is a tombstone in pulls"
}

func (c *clientChecker) deleteNoBase(ctx context.Context) (Status, string) {
	r := c.created(ctx, "delnobase", map[string]any{"v": 1})
	res := push1(ctx, c.tr, c.delete(r.ID, time.Time{}))
	if res.Status != core.StatusConflict {
		return Fail, fmt.Sprintf("a delete without a base on an existing record answered %s, want conflict", describe(res))
	}
	return Pass, "a delete without a base is a conflict"
}

func (c *clientChecker) deleteMissing(ctx context.Context) (Status, string) {
	res := push1(ctx, c.tr, c.delete(c.id("never"), time.Time{}))
	if res.Status != core.StatusNotFound {
		return Fail, fmt.Sprintf("a delete of a missing record answered %s, want not_found", describe(res))
	}
	return Pass, "a delete of a missing record is not_found"
}

func (c *clientChecker) get(ctx context.Context) (Status, string) {
	g, ok := c.tr.(core.Getter)
	if !ok {
		return Skip, "the client is not a core.Getter"
	}
	r := c.created(ctx, "get", map[string]any{"title": "fetched"})
	got, err := g.Get(ctx, c.cfg.Kind, r.ID)
	if err != nil {
		return Fail, fmt.Sprintf("Get of a created record: %v", err)
	}
	if got.ID != r.ID || !got.UpdatedAt.Equal(r.UpdatedAt) || field(got, "title") != "fetched" || got.Deleted() {
		return Fail, fmt.Sprintf("Get answered %s @%s title %q, want %s @%s title \"fetched\"",
			got.ID, core.FormatTime(got.UpdatedAt), field(got, "title"), r.ID, core.FormatTime(r.UpdatedAt))
	}
	missing := c.id("missing")
	if _, err := g.Get(ctx, c.cfg.Kind, missing); !errors.Is(err, core.ErrNotFound) {
		return Fail, fmt.Sprintf("Get of a missing record answered %v, want core.ErrNotFound", err)
	}
	return Pass, "Get returns the stored record; a missing one is core.ErrNotFound"
}

func (c *clientChecker) scope(ctx context.Context) (Status, string) {
	if c.cfg.Token2 == "" {
		return Skip, "no second token (--token2): scope invisibility not checked"
	}
	r := c.created(ctx, "scoped", map[string]any{"secret": "token-one-only"})
	t2, err := c.cfg.Open(ctx, c.cfg.Token2)
	if err != nil {
		return Fail, fmt.Sprintf("open the client for the second token: %v", err)
	}
	if t2 == nil {
		return Fail, "Open returned no transport for the second token"
	}
	defer closeTransport(t2)
	if g, ok := t2.(core.Getter); ok {
		if got, err := g.Get(ctx, c.cfg.Kind, r.ID); !errors.Is(err, core.ErrNotFound) {
			if err == nil {
				return Fail, fmt.Sprintf("the second token's Get of the first token's record answered it (@%s), want core.ErrNotFound", core.FormatTime(got.UpdatedAt))
			}
			return Fail, fmt.Sprintf("the second token's Get of the first token's record answered %v, want core.ErrNotFound", err)
		}
	}
	if _, ok := c.latest(ctx, t2, r.ID, r.UpdatedAt); ok {
		return Fail, "the second token's pull shows the first token's record"
	}
	res := push1(ctx, t2, c.upsert(r.ID, map[string]any{"secret": "stolen"}, r.UpdatedAt))
	if res.Status != core.StatusNotFound {
		return Fail, fmt.Sprintf("the second token's update of the first token's record answered %s, want not_found", describe(res))
	}
	cr := push1(ctx, t2, c.upsert(r.ID, map[string]any{"secret": "stolen"}, time.Time{}))
	if cr.Record != nil && (cr.Record.UpdatedAt.Equal(r.UpdatedAt) || strings.Contains(string(cr.Record.Data), "token-one-only")) {
		return Fail, fmt.Sprintf("the second token's create over the first token's record shows it: %s", describe(cr))
	}
	if f := c.mustLatest(ctx, r.ID, r.UpdatedAt); field(f, "secret") != "token-one-only" || !f.UpdatedAt.Equal(r.UpdatedAt) {
		return Fail, "the second token changed the first token's record"
	}
	return Pass, "out of scope: absent from pulls and Get, not_found on update, never in an answer"
}

func (c *clientChecker) badToken(ctx context.Context) (Status, string) {
	_, err := c.tr.Pull(ctx, core.PullRequest{Kind: c.cfg.Kind, PageToken: "forged-token", Limit: 2})
	switch {
	case err == nil:
		return Fail, "a pull with a forged page token was served, want core.ErrBadCursor"
	case errors.Is(err, core.ErrBadCursor), errors.Is(err, core.ErrInvalid):
		return Pass, "a forged page token is refused (" + err.Error() + ")"
	}
	return Fail, fmt.Sprintf("a pull with a forged page token failed with %v, want core.ErrBadCursor or core.ErrInvalid", err)
}

func (c *clientChecker) unknownKind(ctx context.Context) (Status, string) {
	_, err := c.tr.Pull(ctx, core.PullRequest{Kind: c.cfg.UnknownKind, Limit: 1})
	switch {
	case err == nil:
		return Skip, fmt.Sprintf("the server serves %q (it serves any kind name?); name a kind it does not serve to check the refusal", c.cfg.UnknownKind)
	case errors.Is(err, core.ErrUnknownKind):
		return Pass, fmt.Sprintf("a pull of %q is core.ErrUnknownKind", c.cfg.UnknownKind)
	}
	return Fail, fmt.Sprintf("a pull of %q failed with %v, want core.ErrUnknownKind", c.cfg.UnknownKind, err)
}

func (c *clientChecker) subscribe(ctx context.Context) (Status, string) {
	s, ok := c.tr.(core.Subscriber)
	if !ok {
		return Skip, "the client is not a core.Subscriber"
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Subscribe(subCtx, []string{c.cfg.Kind})
	if err != nil {
		return Fail, fmt.Sprintf("Subscribe(%q): %v", c.cfg.Kind, err)
	}
	r := c.created(ctx, "notice", map[string]any{"v": 1})
	timer := time.NewTimer(c.cfg.NoticeTimeout)
	defer timer.Stop()
	for {
		select {
		case n, open := <-ch:
			if !open {
				return Fail, "the notice stream closed before announcing a push made after Subscribe returned"
			}
			if n.Kind != c.cfg.Kind || n.Gap {
				continue
			}
			if !n.UpdatedAt.IsZero() && n.UpdatedAt.Before(r.UpdatedAt) {
				continue // an earlier write's notice
			}
			if n.UpdatedAt.IsZero() {
				return Pass, fmt.Sprintf("a push after Subscribe returned was announced (%q has changes)", n.Kind)
			}
			return Pass, fmt.Sprintf("a push after Subscribe returned was announced (%s up to %s @%s)", n.Kind, n.ID, core.FormatTime(n.UpdatedAt))
		case <-timer.C:
			return Fail, fmt.Sprintf("no notice for %q within %v of a push made after Subscribe returned: the subscription was not in force when it returned, or notices are lost",
				c.cfg.Kind, c.cfg.NoticeTimeout)
		case <-ctx.Done():
			return Fail, fmt.Sprintf("waiting for a notice: %v", ctx.Err())
		}
	}
}
