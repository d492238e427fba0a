package bunstore

import (
	"context"
	"strings"
)

// sysSQL holds the system tables' statements with bound parameters, in the
// dialect's placeholders, so that SQLite prepares them once: the outbox's
// one-op statements, and those that take many ids or rows, one per size in
// rowBatches (a list of n ids is sent as statements of those sizes).
type sysSQL struct {
	postgres bool

	enqueue, getOp, opsOfRecord, updateOp, deleteOp string // the outbox's one-op statements

	anyPending string         // one id of a kind's ops, if any
	deleteOps  map[int]string // DELETE outbox ops by op id
	setState   map[int]string // UPDATE outbox state by op id
	opsIn      map[int]string // outbox op ids among op ids
	pending    map[int]string // outbox ids of a kind among ids
	idemIn     map[int]string // idempotency records of a principal by op id
	putIdem    map[int]string // multi-row upsert of idempotency records
}

// idemColumns are the columns of an idempotency record: its key and
// request hash, then the answered record in columns (migration 3), then the
// whole record as JSON, written by versions before migration 3 and read
// when present (it is NULL on every row written since).
const (
	idemColumns = "principal, op_id, request_hash, status, created_at, kind, id, updated_at, deleted_at, edited_at, data"
	idemSelect  = idemColumns + ", record"
)

func newSysSQL(postgres bool) *sysSQL {
	q := &sysSQL{postgres: postgres, deleteOps: map[int]string{}, setState: map[int]string{},
		opsIn: map[int]string{}, pending: map[int]string{}, idemIn: map[int]string{}, putIdem: map[int]string{}}
	q.anyPending = q.numbered("SELECT id FROM offsync_outbox WHERE kind = ? LIMIT 1")
	q.enqueue = qEnqueue // SQLite reports seq as the insert's rowid
	if postgres {
		q.enqueue = q.numbered(qEnqueueReturning)
	}
	q.getOp, q.opsOfRecord = q.numbered(qGetOp), q.numbered(qOpsOfRecord)
	q.updateOp, q.deleteOp = q.numbered(qUpdateOp), q.numbered(qDeleteOp)
	for _, n := range rowBatches {
		in := "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
		q.deleteOps[n] = q.numbered("DELETE FROM offsync_outbox WHERE op_id IN " + in)
		q.setState[n] = q.numbered("UPDATE offsync_outbox SET state = ? WHERE op_id IN " + in)
		q.opsIn[n] = q.numbered("SELECT op_id FROM offsync_outbox WHERE op_id IN " + in)
		q.pending[n] = q.numbered("SELECT DISTINCT id FROM offsync_outbox WHERE kind = ? AND id IN " + in)
		q.idemIn[n] = q.numbered("SELECT " + idemSelect + " FROM offsync_idempotency WHERE principal = ? AND op_id IN " + in)
		row := "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
		q.putIdem[n] = q.numbered("INSERT INTO offsync_idempotency (" + idemColumns + ") VALUES " +
			strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") +
			` ON CONFLICT (principal, op_id) DO UPDATE SET request_hash = EXCLUDED.request_hash,
				status = EXCLUDED.status, created_at = EXCLUDED.created_at, kind = EXCLUDED.kind, id = EXCLUDED.id,
				updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, edited_at = EXCLUDED.edited_at,
				data = EXCLUDED.data, record = NULL`)
	}
	return q
}

// numbered rewrites the ? placeholders of query as $1, $2, ... on Postgres.
// The system queries hold no other question marks.
func (q *sysSQL) numbered(query string) string {
	if !q.postgres {
		return query
	}
	p := placeholders(true)
	var b strings.Builder
	for _, c := range query {
		if c == '?' {
			b.WriteString(p.next())
		} else {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func (q *sysSQL) all() []string {
	out := []string{q.anyPending, q.enqueue, q.getOp, q.opsOfRecord, q.updateOp, q.deleteOp}
	for _, m := range []map[int]string{q.deleteOps, q.setState, q.opsIn, q.pending, q.idemIn, q.putIdem} {
		for _, s := range m {
			out = append(out, s)
		}
	}
	return out
}

// eachBatch runs the statements of stmts over ids in pieces of the sizes in
// rowBatches; each call's arguments are fixed followed by the piece's ids.
func eachBatch(ids []string, stmts map[int]string, fixed []any, fn func(query string, args []any) error) error {
	args := make([]any, 0, len(fixed)+min(len(ids), rowBatches[0]))
	for len(ids) > 0 {
		n := batchSize(len(ids))
		args = append(args[:0], fixed...)
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		if err := fn(stmts[n], args); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// queryStrings runs a query returning one text column and calls each with
// every value.
func (t *Tx) queryStrings(ctx context.Context, query string, args []any, each func(string)) error {
	rows, err := t.query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		each(s)
	}
	return rows.Err()
}
