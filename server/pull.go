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
// committed between pages are neither skipped nor repeated.
func (s *Service) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
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
	if err := s.ensureKind(ctx, req.Kind); err != nil {
		return core.Page{}, err
	}
	after := core.Cursor{UpdatedAt: core.Micro(req.After.UpdatedAt), ID: req.After.ID}
	remaining := int64(-1) // rows after this page, when known
	if req.PageToken != "" {
		if after, remaining, err = s.decodeToken(req.Kind, req.PageToken); err != nil {
			return core.Page{}, err
		}
	}
	filter, err := s.scope(ctx, p, req.Kind)
	if err != nil {
		return core.Page{}, err
	}
	if filter != nil && len(filter.Values) == 0 {
		return core.Page{Remaining: 0}, nil
	}
	var recs []core.Record
	err = s.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
		var err error
		q := core.ChangesQuery{Kind: req.Kind, After: after, Filter: filter, Limit: limit + 1}
		if recs, err = tx.Changes(ctx, q); err != nil {
			return err
		}
		// The first page of a long walk counts what follows once; later
		// pages carry the count down in their tokens.
		if c, ok := tx.(changesCounter); ok && req.PageToken == "" && len(recs) > limit {
			q.Limit = 0
			n, err := c.CountChanges(ctx, q)
			if err != nil {
				return err
			}
			remaining = n
		}
		return nil
	})
	if err != nil {
		return core.Page{}, storeErr("pull "+req.Kind, err)
	}
	page := core.Page{Records: recs, Remaining: 0}
	if len(recs) > limit {
		page.Records = recs[:limit]
		if remaining >= 0 {
			// Rows written during the walk may make it an underestimate,
			// never a negative one; the last page says 0.
			remaining = max(remaining-int64(limit), 1)
		}
		last := page.Records[limit-1]
		page.NextPageToken = s.encodeToken(req.Kind, core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}, remaining)
		page.Remaining = remaining
	}
	return page, nil
}

// changesCounter is implemented by store transactions that can count a
// kind's feed (the bun stores), so pages can say how many rows remain.
type changesCounter interface {
	CountChanges(ctx context.Context, q core.ChangesQuery) (int64, error)
}

// Get implements core.Getter: the record kind/id, a tombstone too; a missing
// record and one outside the caller's scope are both core.ErrNotFound.
func (s *Service) Get(ctx context.Context, kind, id string) (core.Record, error) {
	if err := s.checkOpen(); err != nil {
		return core.Record{}, err
	}
	p, err := s.principal(ctx)
	if err != nil {
		return core.Record{}, err
	}
	if err := s.ensureKind(ctx, kind); err != nil {
		return core.Record{}, err
	}
	if id == "" {
		return core.Record{}, fmt.Errorf("server: %w: empty id", core.ErrInvalid)
	}
	filter, err := s.scope(ctx, p, kind)
	if err != nil {
		return core.Record{}, err
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
// payload = version 2 | uvarint len(kind) | kind | int64 µs |
// uvarint remaining+1 (0: unknown) | id.
const (
	tokenVersion = 2
	tokenMACLen  = 16
)

func (s *Service) encodeToken(kind string, c core.Cursor, remaining int64) string {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(kind)+8+len(c.ID)+tokenMACLen)
	b = append(b, tokenVersion)
	b = binary.AppendUvarint(b, uint64(len(kind)))
	b = append(b, kind...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.UpdatedAt.UnixMicro()))
	b = binary.AppendUvarint(b, uint64(max(remaining, -1)+1))
	b = append(b, c.ID...)
	b = append(b, s.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Service) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write(b)
	return m.Sum(nil)[:tokenMACLen]
}

func (s *Service) decodeToken(kind, tok string) (core.Cursor, int64, error) {
	bad := func(why string) (core.Cursor, int64, error) {
		return core.Cursor{}, 0, fmt.Errorf("server: page token: %w: %s", core.ErrBadCursor, why)
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
	if payload[0] != tokenVersion {
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
	rem, w := binary.Uvarint(rest[8:])
	if w <= 0 {
		return bad("malformed")
	}
	return core.Cursor{UpdatedAt: time.UnixMicro(us).UTC(), ID: string(rest[8+w:])}, int64(rem) - 1, nil
}
