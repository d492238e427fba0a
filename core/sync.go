package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// SyncOption narrows a Sync.
type SyncOption func(*syncConfig)

type syncConfig struct {
	push, pull       []string
	pushSet, pullSet bool
}

// Kinds limits both the push and the pull to the given kinds.
func Kinds(kinds ...string) SyncOption {
	return func(c *syncConfig) {
		c.push, c.pull, c.pushSet, c.pullSet = kinds, kinds, true, true
	}
}

// PushKinds limits the push to the given kinds (none: push nothing).
func PushKinds(kinds ...string) SyncOption {
	return func(c *syncConfig) { c.push, c.pushSet = kinds, true }
}

// PullKinds limits the pull to the given kinds (none: pull nothing).
func PullKinds(kinds ...string) SyncOption {
	return func(c *syncConfig) { c.pull, c.pullSet = kinds, true }
}

// Sync pushes the outbox, then pulls every kind. It always ends: each op gets
// at most one push and one resolution push per call. The error is non-nil
// when the push or a pull failed; Stats tell what was done anyway. A Sync of
// kinds another Sync is working on waits for it, then runs.
func (e *Engine) Sync(ctx context.Context, opts ...SyncOption) (Stats, error) {
	var cfg syncConfig
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.pushSet {
		cfg.push = e.order
	}
	if !cfg.pullSet {
		cfg.pull = e.order
	}
	if err := e.checkKinds(cfg.push); err != nil {
		return Stats{}, err
	}
	if err := e.checkKinds(cfg.pull); err != nil {
		return Stats{}, err
	}
	if err := e.begin(); err != nil {
		return Stats{}, err
	}
	defer e.running.Done()
	unlock := e.lockKinds(append(slices.Clone(cfg.push), cfg.pull...))
	defer unlock()

	e.emit(SyncStarted{At: e.at(), PushKinds: cfg.push, PullKinds: cfg.pull})
	var st Stats
	var errs []error
	ctx, end := StartSpan(ctx, e.opts.Tracer, SpanSync, Attr{}, Attr{})
	defer func() { end(errors.Join(errs...)) }()
	if len(cfg.push) > 0 {
		if err := e.push(ctx, cfg.push, &st); err != nil {
			errs = append(errs, err)
		}
	}
	if len(cfg.pull) > 0 && ctx.Err() == nil {
		walks, err := e.scheduleResync(ctx, cfg.pull)
		if err != nil {
			errs = append(errs, err)
		}
		if err := e.pull(ctx, cfg.pull, &st, walks); err != nil {
			errs = append(errs, err)
		}
	}
	if n, err := e.stuck(ctx, cfg.push); err == nil {
		st.Stuck = n
	}
	e.emit(SyncCompleted{At: e.at(), Stats: st})
	return st, errors.Join(errs...)
}

// stuck counts the ops of kinds still in the outbox.
func (e *Engine) stuck(ctx context.Context, kinds []string) (int, error) {
	counts, err := e.Pending(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range counts {
		if slices.Contains(kinds, c.Kind) {
			n += c.Count
		}
	}
	return n, nil
}

func (e *Engine) fail(kind string, err error, willRetry bool, st *Stats) error {
	cat := Categorize(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		cat = CategoryNetwork
	}
	e.emit(SyncError{At: e.at(), Kind: kind, Err: err, Category: cat, WillRetry: willRetry})
	st.Errors++
	return err
}

// ---- pull ----

const (
	metaResync   = "resync:"    // kind → a walk's state (resynckept.go): a resync under way, or a first walk's list
	metaResyncAt = "resync_at:" // kind → unix micros of the last completed resync
)

// pull walks each kind's feed from its cursor, page by page; each page and
// the cursor after it commit together (guarantee G4, docs/guarantees.md).
// walks holds the walk state of kinds already read (scheduleResync, or a
// resync just started); pullKind reads the others.
func (e *Engine) pull(ctx context.Context, kinds []string, st *Stats, walks map[string]walkState) error {
	var errs []error
	for _, kind := range e.order {
		if !slices.Contains(kinds, kind) {
			continue
		}
		w, known := walks[kind]
		if err := e.pullKind(ctx, kind, st, w, known); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

type pulled struct {
	page Page
	err  error
	end  bool // a stream's last message: err is how it ended
}

// walkReader reads the pages of one walk: over one stream when the transport
// is a PageStreamer, else a request per page, each sent as soon as the
// previous answer has named its token. Either way the next page travels
// and decodes while the current one is applied.
type walkReader struct {
	e        *Engine
	ctx      context.Context
	streamer PageStreamer    // nil: a request per page
	ch       <-chan pulled   // where the next page arrives; nil when nothing travels
	walkCtx  context.Context // the walk's, ended by stop
	stop     context.CancelFunc
}

func (e *Engine) newWalkReader(ctx context.Context) *walkReader {
	w := &walkReader{e: e, ctx: ctx}
	w.streamer, _ = e.tr.(PageStreamer)
	return w
}

// start begins reading a walk at req, after stopping what was travelling.
func (w *walkReader) start(req PullRequest) {
	w.close()
	ctx, cancel := context.WithCancel(w.ctx)
	w.walkCtx, w.stop = ctx, cancel
	if w.streamer != nil {
		w.ch = w.e.streamPages(ctx, w.streamer, req)
	} else {
		w.ch = w.e.fetchPage(ctx, req)
	}
}

// more asks for the page after a page with a token: a request of its own,
// or nothing when the stream brings it anyway. It reports whether a token
// travels in the request.
func (w *walkReader) more(req PullRequest) bool {
	if w.streamer != nil {
		return false
	}
	w.ch = w.e.fetchPage(w.walkCtx, req)
	return true
}

// next waits for the next page.
func (w *walkReader) next() (Page, error) {
	res := <-w.ch
	if w.streamer == nil {
		w.ch = nil
	} else if res.end {
		w.ch = nil
		if res.err == nil {
			res.err = fmt.Errorf("offsync: %w: the page stream ended before the walk's last page", ErrUnavailable)
		}
	}
	return res.page, res.err
}

// close stops what is travelling and waits for it to end.
func (w *walkReader) close() {
	if w.stop != nil {
		w.stop()
	}
	for w.ch != nil {
		res := <-w.ch
		if w.streamer == nil || res.end {
			w.ch = nil
		}
	}
}

// fetchPage requests a page in the background.
func (e *Engine) fetchPage(ctx context.Context, req PullRequest) <-chan pulled {
	ch := make(chan pulled, 1)
	go func() {
		ctx, end := StartSpan(ctx, e.opts.Tracer, SpanPull, StringAttr(AttrKind, req.Kind), Attr{})
		p, err := e.tr.Pull(ctx, req)
		end(err)
		ch <- pulled{page: p, err: err}
	}()
	return ch
}

// streamPages reads a walk over s in the background; the channel holds at
// most one page beyond the one being applied, and the stream waits for it
// to be taken (its flow control holds back the authority), then ends with
// a message saying how the stream ended.
func (e *Engine) streamPages(ctx context.Context, s PageStreamer, req PullRequest) <-chan pulled {
	ch := make(chan pulled, 1)
	go func() {
		ctx, end := StartSpan(ctx, e.opts.Tracer, SpanPull, StringAttr(AttrKind, req.Kind), Attr{})
		err := s.PullPages(ctx, req, func(p Page) error {
			select {
			case ch <- pulled{page: p}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		end(err)
		ch <- pulled{err: err, end: true}
	}()
	return ch
}

func (e *Engine) pullKind(ctx context.Context, kind string, st *Stats, walk walkState, known bool) error {
	cursor, walk, err := e.beginWalk(ctx, kind, walk, known)
	if err != nil {
		return e.fail(kind, fmt.Errorf("offsync: read cursor of %q: %w", kind, err), false, st)
	}
	r := e.newWalkReader(ctx)
	defer r.close()
	r.start(PullRequest{Kind: kind, After: cursor, Limit: e.opts.PageSize})
	resetDone, tokenRetried, withToken := false, false, false
	for {
		page, err := r.next()
		switch {
		case errors.Is(err, ErrResetRequired) && !resetDone:
			resetDone = true
			if walk, err = e.startResync(ctx, kind, true, "reset_required"); err != nil {
				return e.fail(kind, err, false, st)
			}
			cursor = Cursor{}
			r.start(PullRequest{Kind: kind, Limit: e.opts.PageSize})
			withToken = false
			continue
		case errors.Is(err, ErrBadCursor) && withToken && !tokenRetried:
			// A token the authority no longer reads (another instance, a
			// restart): the walk starts again from the last applied row.
			tokenRetried = true
			r.start(PullRequest{Kind: kind, After: cursor, Limit: e.opts.PageSize})
			withToken = false
			continue
		case err != nil:
			return e.fail(kind, fmt.Errorf("offsync: pull %q: %w", kind, err), Retryable(err), st)
		}
		next, err := checkPage(kind, cursor, page.Records)
		if err != nil {
			return e.fail(kind, err, false, st)
		}
		more := page.NextPageToken != "" && len(page.Records) > 0
		if more {
			withToken = r.more(PullRequest{Kind: kind, After: next, PageToken: page.NextPageToken, Limit: e.opts.PageSize})
		}
		if walk, err = e.applyPage(ctx, kind, next, page, walk, st); err != nil {
			return e.fail(kind, err, false, st)
		}
		cursor = next
		if !more {
			break
		}
	}
	if err := e.finishWalk(ctx, kind, walk); err != nil {
		return e.fail(kind, fmt.Errorf("offsync: finish the walk of %q: %w", kind, err), false, st)
	}
	return nil
}

// beginWalk reads, in one read transaction, the cursor of kind and, unless
// known, its walk state; a walk from the zero cursor lists the rows the
// replica holds (listRows), and outside a resync is a first walk.
func (e *Engine) beginWalk(ctx context.Context, kind string, walk walkState, known bool) (Cursor, walkState, error) {
	var c Cursor
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		if c, err = tx.Cursor(ctx, kind); err != nil {
			return err
		}
		if !known {
			if walk, err = readWalk(ctx, tx, kind); err != nil {
				return err
			}
		}
		if c.IsZero() {
			walk, err = listRows(ctx, tx, kind, walk)
		}
		return err
	})
	return c, walk, err
}

// checkPage validates a page of kind after cursor and returns the cursor
// after it: every record of the kind, with an id and a version, in strictly
// increasing (updated_at, id) order after the cursor.
func checkPage(kind string, cursor Cursor, recs []Record) (Cursor, error) {
	next := cursor
	for i := range recs {
		r := &recs[i]
		if r.Kind == "" {
			r.Kind = kind
		}
		if r.Kind != kind || r.ID == "" || r.UpdatedAt.IsZero() {
			return cursor, fmt.Errorf("%w: pull %q: record %d has kind %q, id %q, updated_at %v", ErrInvalid, kind, i, r.Kind, r.ID, r.UpdatedAt)
		}
		if !next.Before(r.UpdatedAt, r.ID) {
			return cursor, fmt.Errorf("%w: pull %q: record %s/%s is not after the cursor (%s, %s): the feed must be ordered by (updated_at, id)",
				ErrInvalid, kind, FormatTime(r.UpdatedAt), r.ID, FormatTime(next.UpdatedAt), next.ID)
		}
		next = Cursor{UpdatedAt: r.UpdatedAt, ID: r.ID}
	}
	return next, nil
}

// applyPage commits a checked page with the cursor after it, and the walk's
// list without the ids the page brought; it returns the walk state after
// it.
func (e *Engine) applyPage(ctx context.Context, kind string, next Cursor, page Page, walk walkState, st *Stats) (walkState, error) {
	if len(page.Records) == 0 {
		return walk, nil
	}
	var res ApplyResult
	after, write := walk.seen(page.Records)
	write = write || walk.unsaved // a first walk's list is written with its first page
	after.unsaved = false
	err := e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		res, err = tx.ApplyPage(ctx, kind, page.Records)
		if err != nil {
			return err
		}
		if res.Kept > 0 {
			if err := rememberKept(ctx, tx, kind, page.Records); err != nil {
				return err
			}
		}
		if write {
			if err := writeWalk(ctx, tx, kind, after); err != nil {
				return err
			}
		}
		e.checkpoint("mid_page_apply")
		return tx.SetCursor(ctx, kind, next)
	})
	if err != nil {
		return walk, fmt.Errorf("offsync: apply page of %q: %w", kind, err)
	}
	st.Pulled += res.Upserts + res.Deletes
	st.Kept += res.Kept
	e.emit(PagePulled{At: e.at(), Kind: kind, Upserts: res.Upserts, Deletes: res.Deletes, Kept: res.Kept, Remaining: page.Remaining,
		Newest: next.UpdatedAt})
	return after, nil
}

// ---- resync ----

// Resync pushes what is pending for kinds (all when none), then pulls them
// from the start, first clearing their rows (those without outbox ops) when
// clearData is set. An interrupted resync resumes at the next Sync.
func (e *Engine) Resync(ctx context.Context, kinds []string, clearData bool) (Stats, error) {
	if len(kinds) == 0 {
		kinds = e.order
	}
	if err := e.checkKinds(kinds); err != nil {
		return Stats{}, err
	}
	if err := e.begin(); err != nil {
		return Stats{}, err
	}
	defer e.running.Done()
	unlock := e.lockKinds(kinds)
	defer unlock()
	e.emit(SyncStarted{At: e.at(), PushKinds: kinds, PullKinds: kinds})
	var st Stats
	var errs []error
	ctx, end := StartSpan(ctx, e.opts.Tracer, SpanSync, StringAttr("offsync.resync", "true"), Attr{})
	defer func() { end(errors.Join(errs...)) }()
	if err := e.push(ctx, kinds, &st); err != nil {
		errs = append(errs, err)
	}
	walks := map[string]walkState{}
	for _, k := range e.order {
		if slices.Contains(kinds, k) {
			w, err := e.startResync(ctx, k, clearData, "requested")
			if err != nil {
				errs = append(errs, e.fail(k, err, false, &st))
				continue
			}
			walks[k] = w
		}
	}
	if err := e.pull(ctx, kinds, &st, walks); err != nil {
		errs = append(errs, err)
	}
	e.emit(SyncCompleted{At: e.at(), Stats: st})
	return st, errors.Join(errs...)
}

// keepFrom is where a resync that keeps its rows starts: the feed's first
// microsecond rather than the zero cursor. A walk from the zero cursor is
// never reset_required and removes only rows it lists (resynckept.go); a
// walk that keeps every row and lists none would keep, forever, a row whose
// tombstone the authority collected. From keepFrom, an authority that has
// collected tombstones of the kind answers reset_required at once (or when
// a collection overtakes the walk), and the resync clears instead; one that
// has collected none serves the whole feed.
var keepFrom = Cursor{UpdatedAt: time.UnixMicro(1).UTC()}

// startResync resets a kind's cursor (and clears its rows) in one
// transaction that also records the resync as under way, and returns the
// walk state it recorded: a clear lists the rows it kept because they have
// ops.
func (e *Engine) startResync(ctx context.Context, kind string, clear bool, reason string) (walkState, error) {
	var w walkState
	err := e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		w = walkState{mode: walkKeep}
		from := keepFrom
		if clear {
			if _, err := tx.ClearKind(ctx, kind); err != nil {
				return err
			}
			ids, err := opIDs(ctx, tx, kind)
			if err != nil {
				return err
			}
			w, from = walkState{mode: walkClear, ids: ids}, Cursor{}
		} else {
			// A first walk's list still stands: the walk that ends the
			// resync brings what the first one did not.
			old, err := readWalk(ctx, tx, kind)
			if err != nil {
				return err
			}
			w.ids = old.ids
		}
		if err := tx.SetCursor(ctx, kind, from); err != nil {
			return err
		}
		return writeWalk(ctx, tx, kind, w)
	})
	if err != nil {
		return walkState{}, fmt.Errorf("offsync: start resync of %q: %w", kind, err)
	}
	e.emit(ResyncStarted{At: e.at(), Kind: kind, ClearData: clear, Reason: reason})
	return w, nil
}

// finishWalk ends a walk that got to the end of the feed: the rows it
// listed and did not bring are swept, and a resync under way is recorded
// as done. A walk with nothing to finish costs nothing.
func (e *Engine) finishWalk(ctx context.Context, kind string, w walkState) error {
	if w.idle() {
		return nil
	}
	return e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		if err := sweep(ctx, tx, kind, w.ids); err != nil {
			return err
		}
		if err := writeWalk(ctx, tx, kind, walkState{}); err != nil {
			return err
		}
		if !w.resync() {
			return nil
		}
		return tx.SetMeta(ctx, metaResyncAt+kind, strconv.FormatInt(e.now().UnixMicro(), 10))
	})
}

// scheduleResync starts a resync of each kind whose last one is older than
// Options.ResyncInterval, and reports resyncs resumed after an interruption.
// It returns the walk state of each kind, for pull.
func (e *Engine) scheduleResync(ctx context.Context, kinds []string) (map[string]walkState, error) {
	type due struct {
		kind    string
		resumed bool
		mode    string
	}
	var dues []due
	var startClock []string
	walks := make(map[string]walkState, len(kinds))
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		for _, k := range kinds {
			w, err := readWalk(ctx, tx, k)
			if err != nil {
				return err
			}
			walks[k] = w
			if w.resync() {
				dues = append(dues, due{k, true, w.mode})
				continue
			}
			if e.opts.ResyncInterval <= 0 {
				continue
			}
			last, err := tx.Meta(ctx, metaResyncAt+k)
			if errors.Is(err, ErrNotFound) {
				// The first sync of a kind is a full pull already; start the clock.
				startClock = append(startClock, k)
				continue
			} else if err != nil {
				return err
			}
			n, _ := strconv.ParseInt(last, 10, 64)
			if e.now().Sub(time.UnixMicro(n)) >= e.opts.ResyncInterval {
				dues = append(dues, due{kind: k})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(startClock) > 0 {
		err := e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
			for _, k := range startClock {
				if err := tx.SetMeta(ctx, metaResyncAt+k, strconv.FormatInt(e.now().UnixMicro(), 10)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, d := range dues {
		if d.resumed {
			e.emit(ResyncStarted{At: e.at(), Kind: d.kind, ClearData: d.mode == walkClear, Resumed: true, Reason: "resumed"})
			continue
		}
		w, err := e.startResync(ctx, d.kind, false, "scheduled")
		if err != nil {
			return nil, err
		}
		walks[d.kind] = w
	}
	return walks, nil
}

// metaKept keys the version of a record that a pull left alone because the
// record had ops: the cursor moves past it. Normally the op's answer brings
// the row to the authority's version; when the op leaves the outbox with no
// answer (a create deleted before it was pushed), the cursor is rewound to
// the kept version instead, so the next pull brings it back.
const metaKept = "kept:"

// rememberKept records the versions of the records of a page that have ops.
func rememberKept(ctx context.Context, tx Tx, kind string, recs []Record) error {
	ops, err := tx.Ops(ctx, OpFilter{Kinds: []string{kind}})
	if err != nil {
		return err
	}
	pending := make(map[string]bool, len(ops))
	for _, op := range ops {
		pending[op.ID] = true
	}
	for _, r := range recs {
		if pending[r.ID] {
			if err := tx.SetMeta(ctx, metaKept+kind+"/"+r.ID, strconv.FormatInt(r.UpdatedAt.UnixMicro(), 10)); err != nil {
				return err
			}
		}
	}
	return nil
}

// rewindToKept moves the cursor of kind back before the version of kind/id a
// pull kept, if any, and forgets it.
func rewindToKept(ctx context.Context, tx Tx, kind, id string) error {
	key := metaKept + kind + "/" + id
	v, err := tx.Meta(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("offsync: meta %s: %w", key, err)
	}
	c, err := tx.Cursor(ctx, kind)
	if err != nil {
		return err
	}
	to := Cursor{UpdatedAt: time.UnixMicro(us - 1).UTC()}
	if to.Before(c.UpdatedAt, c.ID) {
		if err := tx.SetCursor(ctx, kind, to); err != nil {
			return err
		}
	}
	return tx.SetMeta(ctx, key, "")
}
