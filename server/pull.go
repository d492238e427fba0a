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
	if req.PageToken != "" {
		if after, err = s.decodeToken(req.Kind, req.PageToken); err != nil {
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
		recs, err = tx.Changes(ctx, core.ChangesQuery{Kind: req.Kind, After: after, Filter: filter, Limit: limit + 1})
		return err
	})
	if err != nil {
		return core.Page{}, storeErr("pull "+req.Kind, err)
	}
	page := core.Page{Records: recs, Remaining: 0}
	if len(recs) > limit {
		page.Records = recs[:limit]
		last := page.Records[limit-1]
		page.NextPageToken = s.encodeToken(req.Kind, core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID})
		page.Remaining = -1
	}
	return page, nil
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
// payload = version 1 | uvarint len(kind) | kind | int64 µs | id.
const (
	tokenVersion = 1
	tokenMACLen  = 16
)

func (s *Service) encodeToken(kind string, c core.Cursor) string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(kind)+8+len(c.ID)+tokenMACLen)
	b = append(b, tokenVersion)
	b = binary.AppendUvarint(b, uint64(len(kind)))
	b = append(b, kind...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.UpdatedAt.UnixMicro()))
	b = append(b, c.ID...)
	b = append(b, s.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Service) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write(b)
	return m.Sum(nil)[:tokenMACLen]
}

func (s *Service) decodeToken(kind, tok string) (core.Cursor, error) {
	bad := func(why string) (core.Cursor, error) {
		return core.Cursor{}, fmt.Errorf("server: page token: %w: %s", core.ErrBadCursor, why)
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
	return core.Cursor{UpdatedAt: time.UnixMicro(us).UTC(), ID: string(rest[8:])}, nil
}
