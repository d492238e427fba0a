package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/jsonscan"
)

// KindLocker is an optional core.Tx: a store whose write transactions do
// not exclude each other (Postgres) locks each kind it writes. Push calls
// LockKinds with the batch's kinds, sorted, first thing in the batch's
// transaction, so that two batches touching the same kinds lock them in the
// same order and cannot deadlock; taken lazily (on each kind's first read,
// in the order of the ops), the locks of two batches over kinds a and b in
// opposite orders could. The locks are held until the transaction ends.
// The bun stores' transactions (drivers/store/sqlite, drivers/store/postgres)
// implement it.
type KindLocker interface {
	LockKinds(ctx context.Context, kinds []string) error
}

// opPlan is what the checks made outside the transaction found for an op.
type opPlan struct {
	final  *core.PushResult // answered before the transaction (bad op, unknown kind, ...)
	kind   error            // the op's kind is not served (wraps core.ErrUnknownKind)
	filter *core.Filter
	hash   string
	early  time.Time // negative-control variant only: the version stamped before the lock
}

type recKey struct{ kind, id string }

// errNotApplied rolls back an op's savepoint when the op is answered with
// anything but Applied (a Validate hook may have written through ctx).
var errNotApplied = errors.New("server: op not applied")

// retryErr marks an op failure that the client should retry later.
type retryErr struct{ err error }

func (e retryErr) Error() string { return e.err.Error() }
func (e retryErr) Unwrap() error { return e.err }

// Push implements core.Transport. The batch is one store transaction; the
// answers come back in the order of ops. When the store's transactions are
// core.BatchTx and there is no Validate hook, the batch's records and
// idempotency records are read and written in bulk (see pushBulk);
// otherwise each op runs in its own savepoint. Either way the answers and
// the rows written are the same. Push itself fails (with an error wrapping
// core.ErrUnavailable) only when the transaction could not commit, in which
// case no op was applied.
//
// An op of a kind that is not served is answered Rejected (permanent) inside
// a batch of several ops; a push of that single op instead fails with an
// error wrapping core.ErrUnknownKind (core.ErrInvalid for a kind name beyond
// core's limits), so that the per-op forms of the transports (a REST PUT or
// DELETE) can answer it as they answer a pull of that kind (404
// unknown_kind, 400).
//
// Every op is checked against the limits first, whatever the transport did:
// an id beyond core.CheckID, an op id over core.MaxIDBytes, a payload over
// Options.MaxRecordBytes or failing core.CheckPayload (deeper than
// Options.MaxDepth, a key twice in one object, NUL, invalid UTF-8) is
// answered Rejected, permanent, and nothing of it is written. An op with an
// empty OpID has no idempotency key: its answer is not kept.
func (s *Service) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	start := time.Now()
	ctx, end := core.StartSpan(ctx, s.opts.Tracer, core.SpanServerPush,
		core.IntAttr(core.AttrOps, len(ops)), core.StringAttr(core.AttrTransport, TransportFrom(ctx)))
	res, err := s.push(ctx, ops)
	end(err)
	s.countPush(ctx, ops, res, err, time.Since(start))
	return res, err
}

func (s *Service) push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	p, err := s.principal(ctx)
	if err != nil {
		return nil, err
	}
	if len(ops) > s.opts.MaxBatch {
		return nil, fmt.Errorf("server: %w: %d ops in one push, at most %d", core.ErrTooLarge, len(ops), s.opts.MaxBatch)
	}
	if len(ops) == 0 {
		return []core.PushResult{}, nil
	}
	plans := make([]opPlan, len(ops))
	filters := map[string]*core.Filter{}
	filterErrs := map[string]error{}
	for i, op := range ops {
		if err := s.plan(ctx, p, op, &plans[i], filters, filterErrs); err != nil {
			return nil, err
		}
		if len(ops) == 1 && plans[i].kind != nil {
			return nil, plans[i].kind
		}
		if s.stampBeforeLock && plans[i].final == nil {
			plans[i].early = s.stampEarly(ctx, op.Kind, op.ID)
		}
	}

	var kinds []string // the kinds the transaction will write, sorted
	for i, op := range ops {
		if plans[i].final == nil {
			kinds = append(kinds, op.Kind)
		}
	}
	slices.Sort(kinds)
	kinds = slices.Compact(kinds)

	purge := s.purgeDue()
	var results []core.PushResult
	var notices map[string]core.Notice
	err = s.store.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		if kl, ok := tx.(KindLocker); ok && len(kinds) > 0 {
			if err := kl.LockKinds(ctx, kinds); err != nil {
				return fmt.Errorf("lock kinds: %w", err)
			}
		}
		if purge {
			if _, err := tx.PurgeIdempotent(ctx, s.clock.Now().Add(-s.opts.IdempotencyRetention)); err != nil {
				return fmt.Errorf("purge idempotency records: %w", err)
			}
		}
		var err error
		done := false
		if bt, ok := tx.(core.BatchTx); ok && s.opts.Validate == nil {
			results, notices, err = s.pushBulk(ctx, tx, bt, p, ops, plans)
			switch {
			case err == nil:
				done = true
			case ctx.Err() != nil:
				return err
			default:
				s.log.InfoContext(ctx, "offsync server: bulk push failed, applying op by op", "ops", len(ops), "err", err)
			}
		}
		if !done {
			results, notices, err = s.runBatch(ctx, &opTx{s: s, tx: tx, p: p}, tx, p, ops, plans)
			if err != nil {
				return err
			}
		}
		if s.notifier != nil {
			for _, n := range notices {
				if err := s.notifier.Announce(ctx, n); err != nil {
					return fmt.Errorf("announce %s: %w", n.Kind, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		if purge {
			s.purgeFailed()
		}
		s.log.WarnContext(ctx, "offsync server: push failed", "ops", len(ops), "err", err)
		return nil, storeErr("push", err)
	}
	if s.notifier == nil {
		for _, n := range notices {
			s.broadcast(n)
		}
	}
	return results, nil
}

// rowAccess is where the ops of a batch read and write their records and
// idempotency records: the transaction itself, op by op with a savepoint
// each (opTx), or maps loaded in bulk and written back at the end (bulkTx).
// Both answer every op with the same rules (pushOne and decide).
type rowAccess interface {
	// idempotent returns the caller's idempotency record of opID; ok is
	// false when there is none.
	idempotent(ctx context.Context, opID string) (rec core.IdempotencyRecord, ok bool, err error)
	// apply answers op with decide, given the record as it stands (nil when
	// missing), and keeps what an Applied answer did: the new row version
	// decide returned, if any, and the answer under the op's key. written
	// reports a new row version; an error aborts the batch.
	apply(ctx context.Context, op core.Op, pl *opPlan, decide decideFunc) (res core.PushResult, written bool, err error)
}

// decideFunc answers an op given its record as it stands (nil when
// missing): the answer and, for an Applied op that writes a new row version,
// the record to write.
type decideFunc func(ctx context.Context, current *core.Record) (core.PushResult, *core.Record, error)

// runBatch answers the ops in order through rw: ops answered by plan, and
// later ops of a record whose earlier op was not applied, need no access.
// It returns the answers and the last applied version of each kind.
func (s *Service) runBatch(ctx context.Context, rw rowAccess, tx core.Tx, p core.Principal,
	ops []core.Op, plans []opPlan) ([]core.PushResult, map[string]core.Notice, error) {
	results := make([]core.PushResult, len(ops))
	notices := map[string]core.Notice{}
	blocked := map[recKey]bool{}
	for i, op := range ops {
		key := recKey{op.Kind, op.ID}
		switch {
		case blocked[key]:
			results[i] = core.PushResult{OpID: op.OpID, Status: core.StatusSkipped,
				Reason: "an earlier op for this record in the batch was not applied"}
			continue
		case plans[i].final != nil:
			results[i] = *plans[i].final
			blocked[key] = true
			continue
		}
		res, written, err := s.pushOne(ctx, rw, tx, p, op, &plans[i])
		if err != nil {
			return nil, nil, err
		}
		results[i] = res
		if res.Status != core.StatusApplied {
			blocked[key] = true
		} else if written {
			notices[op.Kind] = core.Notice{Kind: op.Kind, UpdatedAt: res.Record.UpdatedAt, ID: op.ID}
		}
	}
	return results, notices, nil
}

// plan checks what needs no transaction: the op's shape, its kind, the
// caller's scope, and the request hash. A returned error fails the push.
func (s *Service) plan(ctx context.Context, p core.Principal, op core.Op, pl *opPlan,
	filters map[string]*core.Filter, filterErrs map[string]error) error {
	reject := func(format string, args ...any) {
		pl.final = &core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true,
			Reason: fmt.Sprintf(format, args...)}
	}
	if err := core.CheckID(op.ID); err != nil {
		reject("%v", err)
		return nil
	}
	if len(op.OpID) > core.MaxIDBytes || strings.IndexByte(op.OpID, 0) >= 0 || !utf8.ValidString(op.OpID) {
		reject("%v: an op id has at most %d bytes of UTF-8 without NUL", core.ErrInvalid, core.MaxIDBytes)
		return nil
	}
	switch op.Type {
	case core.OpUpsert:
		if len(op.Payload) > s.opts.MaxRecordBytes {
			reject("%v: a payload of %d bytes, at most %d", core.ErrTooLarge, len(op.Payload), s.opts.MaxRecordBytes)
			return nil
		}
		if err := core.CheckPayload(op.Payload, s.opts.MaxDepth); err != nil {
			reject("bad payload: %v", err)
			return nil
		}
	case core.OpDelete:
	default:
		reject("unknown op type %q", op.Type)
		return nil
	}
	if _, err := s.ensureKind(ctx, op.Kind, true); err != nil {
		if errors.Is(err, core.ErrUnknownKind) || errors.Is(err, core.ErrInvalid) {
			reject("%v", err)
			pl.kind = err
			return nil
		}
		return err
	}
	f, seen := filters[op.Kind]
	ferr := filterErrs[op.Kind]
	if !seen && ferr == nil {
		f, ferr = s.scope(ctx, p, op.Kind)
		filters[op.Kind], filterErrs[op.Kind] = f, ferr
	}
	if ferr != nil {
		switch {
		case errors.Is(ferr, core.ErrUnauthorized):
			return ferr
		case errors.Is(ferr, core.ErrUnavailable):
			pl.final = &core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: ferr.Error()}
		default:
			reject("%v", ferr)
		}
		return nil
	}
	pl.filter = f
	h, err := requestHash(op)
	if err != nil {
		reject("bad payload: %v", err)
		return nil
	}
	pl.hash = h
	return nil
}

// pushOne answers one op through rw: a replay of a known key, or decide
// on the record as it stands.
func (s *Service) pushOne(ctx context.Context, rw rowAccess, tx core.Tx, p core.Principal, op core.Op, pl *opPlan) (core.PushResult, bool, error) {
	if op.OpID != "" {
		rec, ok, err := rw.idempotent(ctx, op.OpID)
		if err != nil {
			return core.PushResult{}, false, fmt.Errorf("idempotency lookup: %w", err)
		}
		if ok {
			if rec.RequestHash == pl.hash {
				return core.PushResult{OpID: op.OpID, Status: rec.Status, Record: keptAnswer(op, rec.Record)}, false, nil
			}
			return core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true,
				Reason: fmt.Sprintf("idempotency key %q reused with a different request (%v)", op.OpID, core.ErrIdempotencyKey)}, false, nil
		}
	}
	return rw.apply(ctx, op, pl, func(ctx context.Context, current *core.Record) (core.PushResult, *core.Record, error) {
		return s.decide(ctx, tx, p, op, pl, current)
	})
}

// decide runs the checks that need the record as it stands (current, nil
// when missing) and, for an op to apply, stamps its version: it returns the
// answer and, when the op writes a new row version, the record to write. An
// Applied answer with no record to write is the delete of a tombstone. An
// error (wrapping core.ErrInvalid: the op is refused; a retryErr or another
// error: to retry) leaves the op unanswered.
func (s *Service) decide(ctx context.Context, tx core.Tx, p core.Principal, op core.Op, pl *opPlan,
	current *core.Record) (core.PushResult, *core.Record, error) {
	answer := func(st core.PushStatus, rec *core.Record, reason string) (core.PushResult, *core.Record, error) {
		return core.PushResult{OpID: op.OpID, Status: st, Record: rec, Reason: reason, Permanent: st == core.StatusRejected}, nil, nil
	}
	if current != nil && !inScope(*current, pl.filter) {
		return answer(core.StatusNotFound, nil, "no such record")
	}
	if current != nil && !op.Force {
		if op.BaseUpdatedAt.IsZero() || !core.Micro(op.BaseUpdatedAt).Equal(current.UpdatedAt) {
			return answer(core.StatusConflict, current, "the record changed since the op's base")
		}
	}
	if current == nil {
		if op.Type == core.OpDelete {
			return answer(core.StatusNotFound, nil, "no such record")
		}
		if !op.BaseUpdatedAt.IsZero() && !op.Force {
			return answer(core.StatusNotFound, nil, "no such record")
		}
	}
	payload := op.Payload
	if pl.filter != nil && op.Type == core.OpUpsert {
		var v json.RawMessage
		if current != nil {
			v, _ = fieldRaw(current.Data, pl.filter.Field)
		} else {
			if len(pl.filter.Values) == 0 {
				return answer(core.StatusRejected, nil, "the caller has no scope to create records in")
			}
			v, _ = json.Marshal(pl.filter.Values[0])
		}
		var err error
		if payload, err = setField(payload, pl.filter.Field, v); err != nil {
			return core.PushResult{}, nil, err
		}
	}
	if s.opts.Validate != nil {
		vop := op
		vop.Payload = payload
		if err := s.opts.Validate(ctx, p, vop, current); err != nil {
			if errors.Is(err, core.ErrRejected) {
				return answer(core.StatusRejected, nil, err.Error())
			}
			return core.PushResult{}, nil, retryErr{err}
		}
	}
	if op.Type == core.OpDelete && current.Deleted() {
		// Already a tombstone: nothing changes, but the answer is kept.
		return core.PushResult{OpID: op.OpID, Status: core.StatusApplied, Record: current}, nil, nil
	}
	version, err := s.stamp(ctx, tx, op.Kind, op.ID, pl.early)
	if err != nil {
		return core.PushResult{}, nil, err
	}
	rec := core.Record{Kind: op.Kind, ID: op.ID, UpdatedAt: version, EditedAt: core.Micro(op.EditedAt)}
	if op.Type == core.OpUpsert {
		rec.Data = payload
	} else {
		rec.Data = current.Data
		rec.DeletedAt = version
		if rec.EditedAt.IsZero() {
			rec.EditedAt = current.EditedAt
		}
	}
	return core.PushResult{OpID: op.OpID, Status: core.StatusApplied, Record: &rec}, &rec, nil
}

// idemRecord is the memory of an applied op's answer under (principal,
// opID). It keeps only what a re-send of the same request cannot tell:
// the answer's kind and id are the op's, and an upsert's data is usually
// its payload, so those are left out (the request hash pins all three; see
// keptAnswer). What remains is the version columns, and the data when it is
// not the payload (a delete's, or a payload the scope rewrote). The row
// itself is no substitute: a later op may have changed it.
func (s *Service) idemRecord(p core.Principal, op core.Op, pl *opPlan, rec *core.Record) core.IdempotencyRecord {
	r := core.IdempotencyRecord{Principal: p.ID, OpID: op.OpID, RequestHash: pl.hash,
		Status: core.StatusApplied, CreatedAt: core.Micro(s.clock.Now())}
	if rec != nil {
		kept := core.Record{UpdatedAt: rec.UpdatedAt, DeletedAt: rec.DeletedAt, EditedAt: rec.EditedAt, Data: rec.Data}
		if op.Type == core.OpUpsert && bytes.Equal(rec.Data, op.Payload) {
			kept.Data = nil
		}
		r.Record = &kept
	}
	return r
}

// keptAnswer rebuilds the answer of an applied op from its idempotency
// record, for a re-send of the same request (same hash: same kind, id and
// canonical payload): what idemRecord left out comes from op. A record kept
// whole (as older versions did) is returned as it is.
func keptAnswer(op core.Op, kept *core.Record) *core.Record {
	if kept == nil {
		return nil
	}
	rec := *kept
	if rec.Kind == "" {
		rec.Kind = op.Kind
	}
	if rec.ID == "" {
		rec.ID = op.ID
	}
	if rec.Data == nil && op.Type == core.OpUpsert {
		rec.Data = op.Payload
	}
	return &rec
}

// opTx is the op-by-op rowAccess: each op reads and writes through the
// transaction inside its own savepoint, so that an op that fails (or a
// Validate hook's writes for an op not applied) is rolled back alone.
type opTx struct {
	s  *Service
	tx core.Tx
	p  core.Principal
}

func (o *opTx) idempotent(ctx context.Context, opID string) (core.IdempotencyRecord, bool, error) {
	rec, err := o.tx.Idempotent(ctx, o.p.ID, opID)
	switch {
	case err == nil:
		return rec, true, nil
	case errors.Is(err, core.ErrNotFound):
		return core.IdempotencyRecord{}, false, nil
	}
	return core.IdempotencyRecord{}, false, err
}

func (o *opTx) apply(ctx context.Context, op core.Op, pl *opPlan, decide decideFunc) (res core.PushResult, written bool, err error) {
	var opErr error
	spErr := o.tx.Savepoint(ctx, func(ctx context.Context) error {
		res, written, opErr = o.applyIn(ctx, op, pl, decide)
		if opErr != nil {
			return opErr
		}
		if res.Status != core.StatusApplied {
			return errNotApplied
		}
		return nil
	})
	switch {
	case spErr == nil, errors.Is(spErr, errNotApplied):
		return res, written, nil
	case opErr == nil || !errors.Is(spErr, opErr):
		return res, false, fmt.Errorf("savepoint: %w", spErr)
	}
	var retry retryErr
	switch {
	case errors.As(opErr, &retry):
		o.s.log.InfoContext(ctx, "offsync server: validation failed, op to retry", "kind", op.Kind, "id", op.ID, "err", opErr)
		return core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: opErr.Error()}, false, nil
	case errors.Is(opErr, core.ErrInvalid):
		return core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true, Reason: opErr.Error()}, false, nil
	default:
		o.s.log.WarnContext(ctx, "offsync server: store failed on op", "kind", op.Kind, "id", op.ID, "err", opErr)
		return core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: opErr.Error()}, false, nil
	}
}

// applyIn is apply inside the op's savepoint.
func (o *opTx) applyIn(ctx context.Context, op core.Op, pl *opPlan, decide decideFunc) (core.PushResult, bool, error) {
	var current *core.Record
	cur, err := o.tx.Get(ctx, op.Kind, op.ID)
	switch {
	case err == nil:
		current = &cur
	case !errors.Is(err, core.ErrNotFound):
		return core.PushResult{}, false, fmt.Errorf("read %s/%s: %w", op.Kind, op.ID, err)
	}
	res, write, err := decide(ctx, current)
	if err != nil || res.Status != core.StatusApplied {
		return res, false, err
	}
	if write != nil {
		if err := o.tx.Put(ctx, *write); err != nil {
			return core.PushResult{}, false, fmt.Errorf("write %s/%s: %w", op.Kind, op.ID, err)
		}
	}
	if op.OpID != "" {
		if err := o.tx.PutIdempotent(ctx, o.s.idemRecord(o.p, op, pl, res.Record)); err != nil {
			return core.PushResult{}, false, fmt.Errorf("record idempotency key: %w", err)
		}
	}
	return res, write != nil, nil
}

// stamp assigns the op's version: the kind's lock is taken by NextVersion,
// and only then is the clock read (guarantee G12 of docs/guarantees.md).
func (s *Service) stamp(ctx context.Context, tx core.Tx, kind, id string, early time.Time) (time.Time, error) {
	if s.stampBeforeLock {
		if _, err := tx.NextVersion(ctx, kind, early); err != nil {
			return time.Time{}, fmt.Errorf("version of %s: %w", kind, err)
		}
		return early, nil
	}
	v, err := tx.NextVersion(ctx, kind, s.clock.Now())
	if err != nil {
		return time.Time{}, fmt.Errorf("version of %s: %w", kind, err)
	}
	v = core.Micro(v)
	if s.afterStamp != nil {
		s.afterStamp(ctx, kind, id, v, true)
	}
	return v, nil
}

// stampEarly is the broken variant kept as a negative control for tests: the
// version is taken from the clock before the transaction and its lock, so a
// writer that stamped earlier may commit later, behind a served cursor.
func (s *Service) stampEarly(ctx context.Context, kind, id string) time.Time {
	s.stampMu.Lock()
	v := core.Micro(s.clock.Now())
	if last := s.lastStamp[kind]; !v.After(last) {
		v = last.Add(time.Microsecond)
	}
	s.lastStamp[kind] = v
	s.stampMu.Unlock()
	if s.afterStamp != nil {
		s.afterStamp(ctx, kind, id, v, false)
	}
	return v
}

func (s *Service) purgeDue() bool {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	now := s.clock.Now()
	if !s.lastPurge.IsZero() && now.Sub(s.lastPurge) < purgeEvery {
		return false
	}
	s.lastPurge = now
	return true
}

func (s *Service) purgeFailed() {
	s.purgeMu.Lock()
	s.lastPurge = time.Time{}
	s.purgeMu.Unlock()
}

// requestHash identifies an op's request: kind, id, type, the payload in
// canonical JSON (upserts), the base and force, each field preceded by its
// length as a uvarint, hashed with SHA-256. The fields are laid out in one
// buffer, on the stack for the usual payload, and hashed at once, so that
// a flat payload's hash allocates only its text.
func requestHash(op core.Op) (string, error) {
	var bufs [2][512]byte
	b := bufs[0][:0]
	b = appendField(b, op.Kind)
	b = appendField(b, op.ID)
	b = appendField(b, string(op.Type))
	if op.Type == core.OpUpsert {
		c, ok := appendCanonicalFlat(bufs[1][:0], op.Payload)
		if !ok {
			var err error
			if c, err = canonicalSlow(op.Payload); err != nil {
				return "", err
			}
		}
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	} else {
		b = appendField(b, "")
	}
	if op.BaseUpdatedAt.IsZero() {
		b = appendField(b, "")
	} else {
		b = binary.AppendUvarint(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(op.BaseUpdatedAt.UnixMicro()))
	}
	force := byte(0)
	if op.Force {
		force = 1
	}
	b = append(b, 1, force)
	sum := sha256.Sum256(b)
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], sum[:])
	return string(text[:]), nil
}

// appendField appends f preceded by its length as a uvarint.
func appendField(b []byte, f string) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}

// canonicalJSON re-encodes a JSON value with sorted keys and no spacing,
// keeping numbers as written: what decoding it (with UseNumber) and
// encoding it again with encoding/json gives. A flat object of plain
// members, the usual payload, is rewritten directly (canonicalFlat); the
// rest goes through encoding/json.
func canonicalJSON(raw json.RawMessage) ([]byte, error) {
	if c, ok := canonicalFlat(raw); ok {
		return c, nil
	}
	return canonicalSlow(raw)
}

// canonicalSlow is canonicalJSON through encoding/json.
func canonicalSlow(raw json.RawMessage) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", core.ErrInvalid, err)
	}
	return json.Marshal(v)
}

// canonicalFlat is canonicalJSON for an object whose keys and string values
// hold no escapes, no bytes encoding/json would escape (<, >, &, control
// characters, U+2028, U+2029), only valid UTF-8, whose values are strings,
// numbers, true, false or null, and whose keys are distinct: for such an
// object encoding/json writes every member back as it was written, so
// sorting the members is all there is to do. ok is false for any other
// input (including invalid JSON), which canonicalSlow then handles.
func canonicalFlat(raw []byte) (out []byte, ok bool) {
	return appendCanonicalFlat(nil, raw)
}

// appendCanonicalFlat is canonicalFlat appending to dst.
func appendCanonicalFlat(dst, raw []byte) (out []byte, ok bool) {
	type member struct{ key, val []byte } // key without its quotes
	var few [16]member
	members := few[:0]
	s := jsonscan.Scanner{B: raw}
	// str reads a string encoding/json writes back unchanged.
	str := func() ([]byte, bool) {
		b, ok := s.PlainString()
		return b, ok && !bytes.ContainsAny(b, "<>&") && !bytes.Contains(b, lineSep) && !bytes.Contains(b, paraSep)
	}
	s.WS()
	if !s.Byte('{') {
		return nil, false
	}
	s.WS()
	if !s.Byte('}') {
		for {
			s.WS()
			key, ok := str()
			if !ok {
				return nil, false
			}
			s.WS()
			if !s.Byte(':') {
				return nil, false
			}
			s.WS()
			start := s.I
			switch {
			case start < len(raw) && raw[start] == '"':
				_, ok = str()
			case s.Literal("true"), s.Literal("false"), s.Literal("null"):
				ok = true
			default:
				_, ok = s.Number()
			}
			if !ok {
				return nil, false
			}
			members = append(members, member{key, raw[start:s.I]})
			s.WS()
			if s.Byte(',') {
				continue
			}
			if s.Byte('}') {
				break
			}
			return nil, false
		}
	}
	s.WS()
	if !s.EOF() {
		return nil, false
	}
	slices.SortFunc(members, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	n := 2
	for j, m := range members {
		if j > 0 && bytes.Equal(m.key, members[j-1].key) {
			return nil, false // a repeated key: the last one wins in encoding/json
		}
		n += len(m.key) + len(m.val) + 4
	}
	out = slices.Grow(dst, n)
	out = append(out, '{')
	for j, m := range members {
		if j > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, m.key...)
		out = append(out, '"', ':')
		out = append(out, m.val...)
	}
	return append(out, '}'), true
}

// The UTF-8 forms of U+2028 and U+2029, which encoding/json escapes.
var (
	lineSep = []byte("\u2028")
	paraSep = []byte("\u2029")
)
