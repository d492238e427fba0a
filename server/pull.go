package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/offsync/offsync/core"
)

// Pull implements core.Transport: one page of a kind's feed in (UpdatedAt, ID)
// order, tombstones included, within the caller's scope. The page token is a
// signed keyset position (the last row served), never an offset, so rows
// committed between pages are neither skipped nor repeated. A page ends at
// the row limit or at Options.MaxPageBytes, whichever comes first.
func (s *Service) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	start := time.Now()
	ctx, end := core.StartSpan(ctx, s.opts.Tracer, core.SpanServerPull,
		core.StringAttr(core.AttrKind, req.Kind), core.StringAttr(core.AttrTransport, TransportFrom(ctx)))
	page, err := s.pull(ctx, req)
	end(err)
	s.countPull(ctx, req.Kind, &page, err, time.Since(start))
	return page, err
}

// PullPages implements core.PageStreamer: it serves the walk req begins
// (or continues, when req carries a page token) page after page, each
// exactly what Pull answers for the same position — scope, limits, the
// tombstone horizon and the page tokens hold page by page — and hands each
// to yield, until a page with no token, an error, yield's error or the end
// of ctx. Every server half that streams a walk goes through it; yield is
// where the half frames the page and waits for its peer (flow control).
func (s *Service) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	return core.PullEach(ctx, s, req, yield)
}

func (s *Service) pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if err := s.checkOpen(); err != nil {
		return core.Page{}, err
	}
	p, err := s.principal(ctx)
	if err != nil {
		return core.Page{}, err
	}
	if req.Limit < 0 {
		return core.Page{}, fmt.Errorf("server: %w: negative limit %d", core.ErrInvalid, req.Limit)
	}
	limit := req.Limit
	if limit == 0 {
		limit = s.opts.DefaultLimit
	}
	if limit > s.opts.MaxLimit {
		limit = s.opts.MaxLimit
	}
	served, err := s.ensureKind(ctx, req.Kind, false)
	if err != nil {
		return core.Page{}, err
	}
	if req.After.ID != "" {
		if err := core.CheckID(req.After.ID); err != nil {
			return core.Page{}, fmt.Errorf("server: cursor: %w", err)
		}
	}
	after := core.Cursor{UpdatedAt: core.Micro(req.After.UpdatedAt), ID: req.After.ID}
	tokRem := remaining{n: -1}  // what the walk knew before this page
	fromStart := after.IsZero() // the walk began at the start of the feed
	if req.PageToken != "" {
		if after, tokRem, fromStart, err = s.decodeToken(req.Kind, req.PageToken); err != nil {
			return core.Page{}, err
		}
	}
	filter, err := s.scope(ctx, p, req.Kind)
	if err != nil {
		return core.Page{}, err
	}
	if !served || (filter != nil && len(filter.Values) == 0) {
		return core.Page{Remaining: 0}, nil
	}
	var recs []core.Record
	var rem remaining
	more, reset := false, false
	err = s.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
		var err error
		q := core.ChangesQuery{Kind: req.Kind, After: after, Filter: filter, Limit: limit + 1, MaxBytes: s.opts.MaxPageBytes}
		if recs, err = tx.Changes(ctx, q); err != nil {
			return err
		}
		if reset, err = pastHorizon(ctx, tx, req.Kind, after, fromStart); err != nil || reset {
			return err
		}
		recs, more = s.cutPage(recs, limit)
		if !more {
			return nil
		}
		rem = tokRem.after(len(recs))
		if rem.n >= 0 {
			return nil // an exact count, or a lower bound not used up
		}
		// The count of what follows is bounded (countPages pages' worth
		// of rows): beyond it, the walk knows a lower bound and counts
		// again once that is used up.
		if c, ok := tx.(changesCounter); ok {
			q.Limit = countPages*limit + 1
			n, err := c.CountChanges(ctx, q)
			if err != nil {
				return err
			}
			rem = counted(n, int64(q.Limit), len(recs))
		}
		return nil
	})
	if err != nil {
		return core.Page{}, storeErr("pull "+req.Kind, err)
	}
	if reset {
		return core.Page{}, resetErr(req.Kind, after, req.PageToken != "")
	}
	page := core.Page{Records: recs, Remaining: 0}
	if more {
		last := recs[len(recs)-1]
		page.NextPageToken = s.encodeToken(req.Kind, core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}, rem, fromStart)
		page.Remaining = rem.exact()
	}
	return page, nil
}

// countPages bounds the count of a walk's remaining rows: at most this many
// pages' worth of rows are counted by one pull.
const countPages = 10

// cutPage ends a page of the rows read (at most limit+1) at the row limit
// or at the byte budget, keeping at least one row; more reports rows beyond
// the page.
func (s *Service) cutPage(recs []core.Record, limit int) ([]core.Record, bool) {
	more := len(recs) > limit
	if more {
		recs = recs[:limit]
	}
	size := 0
	for i := range recs {
		size += core.RecordCost(&recs[i])
		if i > 0 && size > s.opts.MaxPageBytes {
			return recs[:i], true
		}
	}
	return recs, more
}

// remaining is what a walk knows of the rows after its position: n rows
// exactly, at least n rows (lower), or nothing (n < 0).
type remaining struct {
	n     int64
	lower bool
}

func (r remaining) known() bool { return r.n >= 0 && !r.lower }

// exact is the count a page reports: -1 unless known.
func (r remaining) exact() int64 {
	if r.known() {
		return r.n
	}
	return -1
}

// after is what is known once served more rows have been served (a page
// that has a next one): an exact count stays positive (rows written during
// the walk may make it an underestimate, never a negative one); a lower
// bound that is used up is unknown.
func (r remaining) after(served int) remaining {
	switch {
	case r.n < 0:
		return r
	case !r.lower:
		return remaining{n: max(r.n-int64(served), 1)}
	case r.n > int64(served):
		return remaining{n: r.n - int64(served), lower: true}
	}
	return remaining{n: -1}
}

// counted turns a count of at most limit rows, from the page's start, into
// what remains after its served rows.
func counted(n, limit int64, served int) remaining {
	return remaining{n: max(n-int64(served), 1), lower: n >= limit}
}

// changesCounter is implemented by store transactions that can count a
// kind's feed (the bun stores), so pages can say how many rows remain.
type changesCounter interface {
	CountChanges(ctx context.Context, q core.ChangesQuery) (int64, error)
}

// Get implements core.Getter: the record kind/id, a tombstone too; a missing
// record and one outside the caller's scope are both core.ErrNotFound.
func (s *Service) Get(ctx context.Context, kind, id string) (core.Record, error) {
	ctx, end := core.StartSpan(ctx, s.opts.Tracer, core.SpanServerGet,
		core.StringAttr(core.AttrKind, kind), core.StringAttr(core.AttrTransport, TransportFrom(ctx)))
	rec, err := s.get(ctx, kind, id)
	end(err)
	s.countCall(ctx, false, err)
	return rec, err
}

func (s *Service) get(ctx context.Context, kind, id string) (core.Record, error) {
	if err := s.checkOpen(); err != nil {
		return core.Record{}, err
	}
	p, err := s.principal(ctx)
	if err != nil {
		return core.Record{}, err
	}
	served, err := s.ensureKind(ctx, kind, false)
	if err != nil {
		return core.Record{}, err
	}
	if err := core.CheckID(id); err != nil {
		return core.Record{}, fmt.Errorf("server: %w", err)
	}
	filter, err := s.scope(ctx, p, kind)
	if err != nil {
		return core.Record{}, err
	}
	if !served {
		return core.Record{}, fmt.Errorf("server: %s/%s: %w", kind, id, core.ErrNotFound)
	}
	var rec core.Record
	err = s.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
		var err error
		rec, err = tx.Get(ctx, kind, id)
		return err
	})
	if errors.Is(err, core.ErrNotFound) {
		return core.Record{}, fmt.Errorf("server: %s/%s: %w", kind, id, core.ErrNotFound)
	}
	if err != nil {
		return core.Record{}, storeErr("get "+kind, err)
	}
	if !inScope(rec, filter) {
		return core.Record{}, fmt.Errorf("server: %s/%s: %w", kind, id, core.ErrNotFound)
	}
	return rec, nil
}

// Page tokens: base64url(payload | HMAC-SHA256(secret, payload)[:16]) with
// payload = version 4 | uvarint len(kind) | kind | int64 µs |
// uvarint remaining | uvarint flags | id, where remaining is 0 when
// unknown, 2n+1 for exactly n rows, 2n+2 for at least n rows, and flags
// has bit 0 set for a walk that began at the start of the feed (see
// pastHorizon). Version 3 tokens (no flags) and version 2 tokens (no
// flags, remaining n+1, 0 unknown) are still read, as tokens of a walk
// that did not begin at the start.
const (
	tokenVersion   = 4
	tokenVersionV3 = 3
	tokenVersionV2 = 2
	tokenMACLen    = 16

	tokenFromStart = 1 // flag: the walk began at the start of the feed
)

func (s *Service) encodeToken(kind string, c core.Cursor, rem remaining, fromStart bool) string {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(kind)+8+len(c.ID)+tokenMACLen)
	b = append(b, tokenVersion)
	b = binary.AppendUvarint(b, uint64(len(kind)))
	b = append(b, kind...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.UpdatedAt.UnixMicro()))
	var v uint64
	switch {
	case rem.n < 0:
	case rem.lower:
		v = 2*uint64(rem.n) + 2
	default:
		v = 2*uint64(rem.n) + 1
	}
	b = binary.AppendUvarint(b, v)
	var flags uint64
	if fromStart {
		flags |= tokenFromStart
	}
	b = binary.AppendUvarint(b, flags)
	b = append(b, c.ID...)
	b = append(b, s.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Service) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write(b)
	return m.Sum(nil)[:tokenMACLen]
}

func (s *Service) decodeToken(kind, tok string) (core.Cursor, remaining, bool, error) {
	bad := func(why string) (core.Cursor, remaining, bool, error) {
		return core.Cursor{}, remaining{}, false, fmt.Errorf("server: page token: %w: %s", core.ErrBadCursor, why)
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return bad("not base64url")
	}
	if len(b) < 1+1+8+tokenMACLen {
		return bad("too short")
	}
	payload, sum := b[:len(b)-tokenMACLen], b[len(b)-tokenMACLen:]
	if !hmac.Equal(sum, s.mac(payload)) {
		return bad("signature does not match")
	}
	version := payload[0]
	if version != tokenVersion && version != tokenVersionV3 && version != tokenVersionV2 {
		return bad("unknown version")
	}
	n, w := binary.Uvarint(payload[1:])
	rest := payload[1:]
	if w <= 0 || n > uint64(len(rest)-w) {
		return bad("malformed")
	}
	rest = rest[w:]
	if string(rest[:n]) != kind {
		return bad("issued for another kind")
	}
	rest = rest[n:]
	if len(rest) < 8 {
		return bad("malformed")
	}
	us := int64(binary.BigEndian.Uint64(rest[:8]))
	v, w := binary.Uvarint(rest[8:])
	if w <= 0 || v > 1<<62 {
		return bad("malformed")
	}
	rest = rest[8+w:]
	fromStart := false
	if version == tokenVersion {
		flags, w := binary.Uvarint(rest)
		if w <= 0 || flags&^tokenFromStart != 0 {
			return bad("malformed")
		}
		rest = rest[w:]
		fromStart = flags&tokenFromStart != 0
	}
	rem := remaining{n: -1}
	switch {
	case v == 0:
	case version == tokenVersionV2:
		rem.n = int64(v) - 1
	case v%2 == 1:
		rem.n = int64(v-1) / 2
	default:
		rem = remaining{n: int64(v-2) / 2, lower: true}
	}
	return core.Cursor{UpdatedAt: time.UnixMicro(us).UTC(), ID: string(rest)}, rem, fromStart, nil
}
