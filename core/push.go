package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// push sends the outbox of kinds in outbox order, one op per record at a
// time (guarantee G5, docs/guarantees.md), in batches. Each op is pushed at most once per call,
// plus at most one resolution push (guarantee G8).
//
// Batches are pipelined: once the authority has answered batch N, the next
// batch is marked in flight and sent, and N's answers are applied while the
// authority works on it. A transport that is a Pipeliner carries more than
// one push at a time: then up to its PushDepth batches are in flight, so
// that the next one is marked and sent while the authority still works on
// the previous one, and the authority never waits for the replica. The
// batches of one pass hold distinct records, so a batch never depends on an
// earlier one's answers, in whatever order the authority applies them.
// Answers are applied in batch order; when N's answers pause pushing, the
// answers of the batches already sent are still applied before push
// returns.
func (e *Engine) push(ctx context.Context, kinds []string, st *Stats) error {
	pushed := map[string]bool{}
	size := e.batchSize(ctx)
	for {
		writes := e.writes.Load()
		h := e.newHeadReader(kinds, pushed, size)
		if paused, err := e.pushBatches(ctx, h, pushed, st); err != nil || paused {
			return err
		}
		if h.found == 0 || !h.again && e.writes.Load() == writes {
			return nil
		}
	}
}

// pushBatches pushes the batches of one pass in order, pipelined (see
// push); heads reads them from the outbox as they are needed.
func (e *Engine) pushBatches(ctx context.Context, heads *headReader, pushed map[string]bool, st *Stats) (paused bool, err error) {
	depth := e.pushDepth()
	var queue []*transmission // sent, in batch order, answers not applied yet
	// fill marks and sends the next batches that have ops left to send
	// until depth of them are in flight or none remains.
	fill := func() {
		for len(queue) < depth && err == nil {
			batch, rerr := heads.next(ctx)
			if rerr != nil {
				err = e.fail("", fmt.Errorf("offsync: read outbox: %w", rerr), false, st)
				return
			}
			if len(batch) == 0 {
				return
			}
			send, merr := e.markInFlight(ctx, batch, st)
			if merr != nil {
				err = merr
				return
			}
			if len(send) < len(batch) {
				heads.again = true // coalesced since read: the new op is for another pass
			}
			if len(send) == 0 {
				continue
			}
			for _, op := range send {
				pushed[op.OpID] = true
			}
			queue = append(queue, e.transmit(ctx, send))
		}
	}
	// apply applies the answers of t.
	apply := func(t *transmission) {
		for _, r := range t.results {
			if r.Status != StatusApplied {
				heads.again = true // a conflict's resolution, a retry: another pass looks
			}
		}
		p, aerr := e.answer(ctx, t, false, st)
		paused = paused || p
		if aerr != nil && err == nil {
			err = aerr
		}
	}
	fill()
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		cur.wait()
		if cur.err == nil && !paused {
			fill() // the next batch travels while cur's answers are applied
		}
		apply(cur)
		if cur.err != nil || paused || err != nil {
			for _, ahead := range queue { // already sent: their answers are facts to record
				ahead.wait()
				apply(ahead)
			}
			return true, err
		}
	}
	return paused, err
}

// maxPushDepth bounds a Pipeliner's PushDepth.
const maxPushDepth = 8

// pushDepth is how many pushes may be in flight at once: 1 unless the
// transport is a Pipeliner.
func (e *Engine) pushDepth() int {
	p, ok := e.tr.(Pipeliner)
	if !ok {
		return 1
	}
	return min(max(p.PushDepth(), 1), maxPushDepth)
}

func (e *Engine) batchSize(ctx context.Context) int {
	size := e.opts.BatchSize
	if b, ok := e.tr.(Batcher); ok {
		if lim, err := b.BatchLimits(ctx); err == nil && lim.MaxOps > 0 && lim.MaxOps < size {
			size = lim.MaxOps
		}
	}
	return size
}

// headReader reads the heads of one pass: in outbox order, the first op of
// every record of kinds when it may be pushed now and was not pushed in
// this call. It reads the outbox a page at a time, as batches are needed:
// the first page is one batch, so that the first batch leaves at once
// rather than after the whole outbox is read, and the later ones
// headPages batches, so that a long outbox is never held in memory at
// once. Pages follow the outbox order (OpFilter.AfterSeq); an op appended
// or rewritten after its place was read is for a record already seen, or
// is met by a later page or pass.
type headReader struct {
	e        *Engine
	kinds    []string
	pushed   map[string]bool
	size     int              // ops per batch
	seen     map[headKey]bool // records whose first op was met
	afterSeq int64            // the last outbox place read
	reads    int              // pages read
	done     bool             // the outbox has no op after afterSeq
	unpaged  bool             // the store ignores AfterSeq: read the rest at once
	heads    []Op             // read, not yet in a batch
	found    int              // heads met in this pass
	// again is set when the pass leaves ops another pass may push: a
	// record's later ops, ops rewritten since they were read, answers that
	// rewrite or keep their op, ops not yet due. A pass that pushes all it
	// read, each applied, with no local write committed meanwhile (a
	// write may land before the last page is read or after: push looks
	// again), ends the push without reading the outbox again.
	again bool
}

// headPages is how many batches' worth of ops the pages after the first
// hold.
const headPages = 8

type headKey struct{ kind, id string }

func (e *Engine) newHeadReader(kinds []string, pushed map[string]bool, size int) *headReader {
	return &headReader{e: e, kinds: kinds, pushed: pushed, size: max(size, 1), seen: map[headKey]bool{}}
}

// next returns the next batch of at most size heads, empty when the pass
// has none left.
func (h *headReader) next(ctx context.Context) ([]Op, error) {
	for len(h.heads) < h.size && !h.done {
		if err := h.read(ctx); err != nil {
			return nil, err
		}
	}
	n := min(len(h.heads), h.size)
	batch := h.heads[:n:n]
	h.heads = h.heads[n:]
	return batch, nil
}

// read reads the next page of the outbox.
func (h *headReader) read(ctx context.Context) error {
	f := OpFilter{Kinds: h.kinds, AfterSeq: h.afterSeq, Limit: h.size}
	if h.reads > 0 {
		f.Limit *= headPages
	}
	if h.unpaged {
		f.AfterSeq, f.Limit = 0, 0
	}
	h.reads++
	var ops []Op
	err := h.e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		ops, err = tx.Ops(ctx, f)
		return err
	})
	if err != nil {
		return err
	}
	now := h.e.now()
	moved := false
	heads := ops[:0] // the page's heads, kept in place: the page is ours
	for _, op := range ops {
		if op.Seq <= h.afterSeq {
			// Read before: a store that ignores AfterSeq (one written
			// before it) is read whole, once, for the rest of the pass.
			h.unpaged = true
			continue
		}
		moved, h.afterSeq = true, op.Seq
		k := headKey{op.Kind, op.ID}
		if h.seen[k] {
			h.again = true
			continue
		}
		h.seen[k] = true
		pushable := op.State == StatePending || op.State == StateInFlight
		switch {
		case pushable && op.NextAttemptAt.After(now):
			h.again = true
		case pushable && !h.pushed[op.OpID]:
			heads = append(heads, op)
			h.found++
		}
	}
	if len(h.heads) == 0 {
		h.heads = heads
	} else {
		h.heads = append(h.heads, heads...)
	}
	switch {
	case f.Limit == 0:
		h.done = true
	case h.unpaged: // found out now: the rest is read at once
	case !moved || len(ops) < f.Limit:
		h.done = true
	}
	return nil
}

// markInFlight marks the ops of batch in flight (upgrading old payloads) and
// returns those to send: ops coalesced since they were read, or failed by
// their upgrade, are left out.
func (e *Engine) markInFlight(ctx context.Context, batch []Op, st *Stats) ([]Op, error) {
	send := make([]Op, 0, len(batch))
	var evs []Event
	err := e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		send, evs = send[:0], evs[:0]
		// With a BatchTx, ops that only go from pending to in flight are
		// marked together by one SetOpState; the others are rewritten one
		// by one.
		bt, bulk := tx.(BatchTx)
		var mark []string
		for _, fresh := range batch {
			// heads read the op outside this transaction; an op changed since
			// then has a new OpID (coalescing), so UpdateOp (or SetOpState)
			// finds nothing.
			changed := fresh.State != StateInFlight
			upgraded := false
			fresh.State = StateInFlight
			if t := e.tables[fresh.Kind]; fresh.Type == OpUpsert && fresh.SchemaVersion < t.SchemaVersion() {
				p, err := t.Upgrade(ctx, fresh.SchemaVersion, fresh.Payload)
				if err == nil {
					err = CheckData(p)
				}
				if err != nil {
					ev, err := e.opFailed(ctx, tx, fresh, fmt.Errorf("upgrade payload from schema %d: %w", fresh.SchemaVersion, err), true)
					if errors.Is(err, ErrNotFound) {
						continue
					} else if err != nil {
						return err
					}
					evs = append(evs, ev)
					continue
				}
				fresh.Payload, fresh.SchemaVersion, changed, upgraded = p, t.SchemaVersion(), true, true
			}
			switch {
			case changed && bulk && !upgraded:
				mark = append(mark, fresh.OpID)
			case changed:
				if err := tx.UpdateOp(ctx, fresh.OpID, fresh); errors.Is(err, ErrNotFound) {
					continue // coalesced into a new op since it was read
				} else if err != nil {
					return err
				}
			}
			send = append(send, fresh)
		}
		if len(mark) == 0 {
			return nil
		}
		set, err := bt.SetOpState(ctx, StateInFlight, mark)
		if err != nil {
			return err
		}
		marked := make(map[string]bool, len(mark))
		for _, id := range mark {
			marked[id] = true
		}
		send = slices.DeleteFunc(send, func(op Op) bool {
			return marked[op.OpID] && !set[op.OpID] // coalesced into a new op since it was read
		})
		return nil
	})
	if err != nil {
		return nil, e.fail("", fmt.Errorf("offsync: mark ops in flight: %w", err), false, st)
	}
	e.emitAll(evs)
	return send, nil
}

// transmission is a push on its way: the ops sent and, once done is
// closed, the authority's answers or the push's error.
type transmission struct {
	ops     []Op
	results []PushResult
	err     error
	done    chan struct{}
}

// transmit pushes ops in the background.
func (e *Engine) transmit(ctx context.Context, ops []Op) *transmission {
	t := &transmission{ops: ops, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		ctx, end := StartSpan(ctx, e.opts.Tracer, SpanPush, IntAttr(AttrOps, len(ops)), Attr{})
		t.results, t.err = e.tr.Push(ctx, ops)
		end(t.err)
	}()
	return t
}

func (t *transmission) wait() { <-t.done }

// send pushes ops and applies the answers. resolution marks the push of
// conflict resolutions, whose conflicts wait for the next call.
func (e *Engine) send(ctx context.Context, ops []Op, resolution bool, st *Stats) (paused bool, err error) {
	t := e.transmit(ctx, ops)
	t.wait()
	return e.answer(ctx, t, resolution, st)
}

// answer applies the outcome of a finished transmission.
func (e *Engine) answer(ctx context.Context, t *transmission, resolution bool, st *Stats) (paused bool, err error) {
	ops, results, err := t.ops, t.results, t.err
	var pushErr error // a refusal of the whole push, reported once its ops are settled
	if err != nil {
		if ctx.Err() != nil {
			return true, e.fail("", ctx.Err(), true, st)
		}
		if Retryable(err) {
			// Not the ops' fault: they stay in flight and are re-sent with the
			// same OpIDs later, without burning an attempt (guarantee G9, docs/guarantees.md).
			return true, e.fail("", fmt.Errorf("offsync: push: %w", err), true, st)
		}
		// The authority refused the push as a whole: each op failed. An
		// unknown kind or an invalid op will never be accepted.
		permanent := errors.Is(err, ErrUnknownKind) || errors.Is(err, ErrInvalid)
		results = make([]PushResult, len(ops))
		for i, op := range ops {
			results[i] = PushResult{OpID: op.OpID, Status: StatusRejected, Reason: err.Error(), Permanent: permanent}
		}
		pushErr = e.fail("", fmt.Errorf("offsync: push: %w", err), !permanent, st)
	}
	e.checkpoint("after_answer")
	results = matchResults(ops, results)

	var conflicts []pendingConflict
	evs := make([]Event, 0, len(ops))
	batchEv := BatchPushed{At: e.at(), Ops: len(ops), Resolution: resolution}
	pushedBefore := st.Pushed
	err = e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		conflicts, evs, paused = conflicts[:0], evs[:0], false
		st.Pushed = pushedBefore
		batchEv.Conflicts, batchEv.Failed = 0, 0
		stl := e.newSettler(tx, ops)
		for i, op := range ops {
			res := results[i]
			switch res.Status {
			case StatusApplied:
				if res.Record == nil {
					return fmt.Errorf("%w: applied answer for op %s carries no record", ErrInvalid, op.OpID)
				}
				rec := *res.Record
				rec.Kind, rec.ID = op.Kind, op.ID
				if err := stl.settle(ctx, op, &rec); err != nil {
					return err
				}
				st.Pushed++
				evs = append(evs, OpApplied{At: e.at(), Op: op, Record: rec})
			case StatusNotFound:
				switch {
				case op.Type == OpDelete:
					// Nothing to delete there: the delete is done.
					if err := stl.settle(ctx, op, nil); err != nil {
						return err
					}
					st.Pushed++
					evs = append(evs, OpApplied{At: e.at(), Op: op})
				case !op.BaseUpdatedAt.IsZero() && !resolution:
					batchEv.Conflicts++
					conflicts = append(conflicts, pendingConflict{op: op})
				default:
					batchEv.Failed++
					ev, err := e.opFailed(ctx, tx, op, fmt.Errorf("%w: the authority answered not found", ErrNotFound), true)
					if err != nil {
						return err
					}
					evs = append(evs, ev)
				}
			case StatusConflict:
				batchEv.Conflicts++
				if res.Record == nil {
					return fmt.Errorf("%w: conflict answer for op %s carries no current record", ErrInvalid, op.OpID)
				}
				cur := *res.Record
				cur.Kind, cur.ID = op.Kind, op.ID
				if resolution {
					// A third writer landed between the conflict and the
					// resolution: the op waits for the next call, where it
					// conflicts again and is merged with that write.
					op.State = StatePending
					op.LastError = "conflict on the resolution push"
					if err := tx.UpdateOp(ctx, op.OpID, op); err != nil {
						return err
					}
					continue
				}
				conflicts = append(conflicts, pendingConflict{op: op, server: &cur})
			case StatusRejected:
				batchEv.Failed++
				ev, err := e.opFailed(ctx, tx, op, fmt.Errorf("%w: %s", ErrRejected, res.Reason), res.Permanent)
				if err != nil {
					return err
				}
				evs = append(evs, ev)
			default: // Skipped, Retry, or an unknown status: not processed
				if res.Status == StatusRetry {
					paused = true
				}
				if res.RetryAfter > 0 {
					op.NextAttemptAt = e.now().Add(res.RetryAfter)
					op.LastError = res.Reason
					if err := tx.UpdateOp(ctx, op.OpID, op); err != nil {
						return err
					}
				}
			}
		}
		return stl.flush(ctx)
	})
	if err != nil {
		return true, e.fail("", fmt.Errorf("offsync: apply push answers: %w", err), false, st)
	}
	batchEv.Applied = st.Pushed - pushedBefore
	e.emit(batchEv)
	e.emitAll(evs)
	for _, ev := range evs {
		if f, ok := ev.(OpFailed); ok && (f.Dead || !errors.Is(f.Err, ErrNotFound)) {
			st.Errors++
		}
	}
	if paused {
		e.fail("", fmt.Errorf("%w: the authority asked to retry later", ErrUnavailable), true, st)
	}
	if len(conflicts) > 0 {
		if err := e.resolve(ctx, conflicts, st); err != nil {
			return true, err
		}
	}
	return paused, pushErr
}

// matchResults lines results up with ops: by OpID when the transport set
// them, else by position. A missing answer means "not processed".
func matchResults(ops []Op, results []PushResult) []PushResult {
	out := make([]PushResult, len(ops))
	byID := make(map[string]PushResult, len(results))
	for _, r := range results {
		if r.OpID != "" {
			byID[r.OpID] = r
		}
	}
	for i, op := range ops {
		if r, ok := byID[op.OpID]; ok {
			out[i] = r
		} else if i < len(results) && results[i].OpID == "" {
			out[i] = results[i]
		} else {
			out[i] = PushResult{OpID: op.OpID, Status: StatusRetry, Reason: "the transport returned no answer for this op"}
		}
	}
	return out
}

// settle ends op for good. rec is the authority's version of the record (nil
// when it does not exist there). When no other op of the record remains, the
// local row becomes rec (guarantee G3, docs/guarantees.md); otherwise the next op is rebased onto
// rec and only the row's version moves (guarantee G5, docs/guarantees.md).
func (e *Engine) settle(ctx context.Context, tx Tx, op Op, rec *Record) error {
	if err := tx.DeleteOp(ctx, op.OpID); err != nil {
		return err
	}
	if err := dropConflict(ctx, tx, op); err != nil {
		return err
	}
	return e.settleRow(ctx, tx, op.Kind, op.ID, rec, op.Type == OpDelete)
}

// dropConflict removes the inbox entry of a settled op; only deferred ops
// have one.
func dropConflict(ctx context.Context, tx Tx, op Op) error {
	if op.State != StateDeferred {
		return nil
	}
	return tx.DeleteConflict(ctx, op.OpID)
}

// settler settles the ops that push answers ended, within one transaction:
// each at once with settle, or, when the store's Tx is a BatchTx, gathered
// and settled together by flush with a few statements per kind. The results
// are the same; the bulk way needs every record at most once among the ops
// answered (our heads push one op per record), else settler keeps to the
// one-op way.
type settler struct {
	e    *Engine
	tx   Tx
	bt   BatchTx // nil: settle each op at once
	ops  []Op
	recs []*Record
}

func (e *Engine) newSettler(tx Tx, ops []Op) *settler {
	s := &settler{e: e, tx: tx}
	if bt, ok := tx.(BatchTx); ok && !sameRecordTwice(ops) {
		s.bt = bt
		s.ops, s.recs = make([]Op, 0, len(ops)), make([]*Record, 0, len(ops))
	}
	return s
}

func sameRecordTwice(ops []Op) bool {
	type rk struct{ kind, id string }
	seen := make(map[rk]bool, len(ops))
	for _, op := range ops {
		k := rk{op.Kind, op.ID}
		if seen[k] {
			return true
		}
		seen[k] = true
	}
	return false
}

// settle ends op with rec (see Engine.settle), now or at flush.
func (s *settler) settle(ctx context.Context, op Op, rec *Record) error {
	if s.bt == nil {
		return s.e.settle(ctx, s.tx, op, rec)
	}
	s.ops, s.recs = append(s.ops, op), append(s.recs, rec)
	return nil
}

// flush settles the gathered ops: what settle does for each, in bulk.
func (s *settler) flush(ctx context.Context) error {
	if s.bt == nil || len(s.ops) == 0 {
		return nil
	}
	tx, bt := s.tx, s.bt
	opIDs := make([]string, len(s.ops))
	var kinds []string
	byKind := map[string][]int{}
	for i, op := range s.ops {
		opIDs[i] = op.OpID
		if _, ok := byKind[op.Kind]; !ok {
			kinds = append(kinds, op.Kind)
		}
		byKind[op.Kind] = append(byKind[op.Kind], i)
	}
	if err := bt.DeleteOps(ctx, opIDs); err != nil {
		return err
	}
	for _, op := range s.ops {
		if err := dropConflict(ctx, tx, op); err != nil {
			return err
		}
	}
	for _, kind := range kinds {
		idx := byKind[kind]
		ids := make([]string, len(idx))
		for j, i := range idx {
			ids[j] = s.ops[i].ID
		}
		pending, err := bt.PendingIDs(ctx, kind, ids)
		if err != nil {
			return err
		}
		done := make([]Record, 0, len(idx)) // rows with no op left, becoming the answer
		for _, i := range idx {
			op, rec := s.ops[i], s.recs[i]
			switch {
			case pending[op.ID]: // rebased onto rec, rare
				if err := s.e.settleRow(ctx, tx, kind, op.ID, rec, op.Type == OpDelete); err != nil {
					return err
				}
			case rec == nil:
				if err := tx.Remove(ctx, kind, op.ID); err != nil {
					return err
				}
			default:
				done = append(done, *rec)
			}
		}
		if len(done) == 0 {
			continue
		}
		if err := bt.SettleMany(ctx, kind, done); err != nil {
			return err
		}
		if err := rewindPast(ctx, tx, kind, done...); err != nil {
			return err
		}
	}
	return nil
}

// settleRow brings the row to rec when no op of it remains. markLocal says
// the row may carry a local delete mark to align with rec.
func (e *Engine) settleRow(ctx context.Context, tx Tx, kind, id string, rec *Record, markLocal bool) error {
	rest, err := tx.Ops(ctx, OpFilter{Kind: kind, ID: id})
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		if rec == nil {
			return tx.Remove(ctx, kind, id)
		}
		if err := tx.Put(ctx, *rec); err != nil {
			return err
		}
		if err := tx.MarkDeletedLocal(ctx, kind, id, rec.DeletedAt); err != nil {
			return err
		}
		return rewindPast(ctx, tx, kind, *rec)
	}
	next := rest[0]
	var merged json.RawMessage
	if rec != nil && !rec.Deleted() && next.Type == OpUpsert && next.BasePayload != nil {
		// next was written on top of local data (its BasePayload) while
		// the settled op was out; the authority's version may hold more
		// (a merge, another writer's fields): merge next's edit into it,
		// so that pushing next does not revert them.
		m, err := rebaseMerge(next, rec.Data)
		if err != nil {
			return err
		}
		merged, next.Payload = m, m
	}
	if rec != nil {
		next.BaseUpdatedAt, next.BasePayload = rec.UpdatedAt, rec.Data
	} else {
		next.BaseUpdatedAt, next.BasePayload = time.Time{}, nil
	}
	if err := tx.UpdateOp(ctx, next.OpID, next); err != nil {
		return err
	}
	local, err := tx.Get(ctx, kind, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	local.UpdatedAt = next.BaseUpdatedAt
	if merged != nil && len(rest) == 1 {
		local.Data = merged
	}
	return tx.Put(ctx, local)
}

// rewindPast keeps pulls complete after rows of kind were set to recs (in
// this order), the authority's answers to ops that were pending. A replayed
// answer (the first one was lost) can be older than a version a pull already
// passed while the op was pending (the row was kept, not applied): the
// cursor is rewound to the rec so that the next pull brings the newer
// version. Folding the rule over recs, as settling them one by one does,
// ends at the oldest UpdatedAt among the recs the cursor had passed: every
// newer version of each of them, strictly later than its rec, is pulled
// again.
func rewindPast(ctx context.Context, tx Tx, kind string, recs ...Record) error {
	c, err := tx.Cursor(ctx, kind)
	if err != nil {
		return err
	}
	to, moved := c, false
	for _, rec := range recs {
		if !to.IsZero() && to.UpdatedAt.After(rec.UpdatedAt) {
			to, moved = Cursor{UpdatedAt: rec.UpdatedAt, ID: rec.ID}, true
		}
	}
	if !moved {
		return nil
	}
	return tx.SetCursor(ctx, kind, to)
}

// rebaseMerge merges the edit of op (from op.BasePayload to op.Payload, its
// changed fields) into server's data.
func rebaseMerge(op Op, server json.RawMessage) (json.RawMessage, error) {
	dec := func(raw json.RawMessage) (map[string]any, error) {
		return Record{Kind: op.Kind, ID: op.ID, Data: raw}.Fields()
	}
	base, err := dec(op.BasePayload)
	if err != nil {
		return nil, err
	}
	local, err := dec(op.Payload)
	if err != nil {
		return nil, err
	}
	srv, err := dec(server)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(ThreeWayMerge(base, local, srv, op.ChangedFields))
	if err != nil {
		return nil, fmt.Errorf("%w: rebase %s/%s: %v", ErrInvalid, op.Kind, op.ID, err)
	}
	return out, nil
}

// opFailed counts a failure of the op itself toward its attempt budget; a
// permanent one, or one over the budget, sends it to the dead letters.
func (e *Engine) opFailed(ctx context.Context, tx Tx, op Op, cause error, permanent bool) (Event, error) {
	op.Attempts++
	op.LastError = cause.Error()
	dead := permanent || op.Attempts >= e.opts.MaxAttempts
	if dead {
		op.State = StateDead
		op.NextAttemptAt = time.Time{}
	} else {
		op.State = StatePending
		op.NextAttemptAt = e.now().Add(e.backoff(op.Attempts))
	}
	if err := tx.UpdateOp(ctx, op.OpID, op); err != nil {
		return nil, err
	}
	return OpFailed{At: e.at(), Op: op, Err: cause, Dead: dead, WillRetry: !dead}, nil
}

func (e *Engine) emitAll(evs []Event) {
	for _, ev := range evs {
		e.emit(ev)
	}
}

// unionFields merges two changed-field sets; nil (unknown) absorbs.
func unionFields(a, b []string) []string {
	if a == nil || b == nil {
		return nil
	}
	out := slices.Clone(a)
	for _, f := range b {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}
