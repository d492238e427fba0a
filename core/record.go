package core

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Micro returns t in UTC truncated to microseconds, the precision offsync
// keeps at every boundary. The zero time stays zero.
func Micro(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// TimeLayout is the wire form of every timestamp: RFC 3339, UTC, microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// FormatTime renders t in TimeLayout; the zero time renders as "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return Micro(t).Format(TimeLayout)
}

// ParseTime parses an RFC 3339 timestamp (any sub-second precision) and
// normalizes it with Micro. A timestamp finer than a microsecond is refused
// rather than rounded, since a rounded version makes a spurious conflict.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp %q is not RFC 3339", ErrInvalid, s)
	}
	if t.Nanosecond()%1000 != 0 {
		return time.Time{}, fmt.Errorf("%w: timestamp %q is finer than a microsecond", ErrInvalid, s)
	}
	return t.UTC(), nil
}

// Timestamp is a time.Time kept as UTC microseconds. In SQL it is an integer
// count of microseconds since the Unix epoch (NULL when zero); in JSON it is
// TimeLayout (null when zero). SyncColumns uses it so that bun models carry
// exact versions on every database.
type Timestamp struct{ time.Time }

// TimestampOf wraps t, normalized with Micro.
func TimestampOf(t time.Time) Timestamp { return Timestamp{Micro(t)} }

// Value implements driver.Valuer.
func (t Timestamp) Value() (driver.Value, error) {
	if t.IsZero() {
		return nil, nil
	}
	return t.UnixMicro(), nil
}

// Scan implements sql.Scanner.
func (t *Timestamp) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		t.Time = time.Time{}
	case int64:
		t.Time = time.UnixMicro(v).UTC()
	case time.Time:
		t.Time = Micro(v)
	case []byte:
		return t.Scan(string(v))
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			t.Time = time.UnixMicro(n).UTC()
			return nil
		}
		p, err := ParseTime(v)
		if err != nil {
			return err
		}
		t.Time = p
	default:
		return fmt.Errorf("offsync: cannot scan %T into Timestamp", src)
	}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + FormatTime(t.Time) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: timestamp must be a string", ErrInvalid)
	}
	p, err := ParseTime(s)
	if err != nil {
		return err
	}
	t.Time = p
	return nil
}

// Record is one entity of a kind. UpdatedAt is the authority's version of it;
// DeletedAt marks a tombstone; EditedAt is when a client made the edit (used
// by lastWriteWins). Data holds the business fields as a JSON object.
type Record struct {
	Kind      string
	ID        string
	UpdatedAt time.Time
	DeletedAt time.Time
	EditedAt  time.Time
	Data      json.RawMessage
}

// Deleted reports whether r is a tombstone.
func (r Record) Deleted() bool { return !r.DeletedAt.IsZero() }

// Fields decodes Data into a map. An empty Data gives an empty map.
func (r Record) Fields() (map[string]any, error) {
	m := map[string]any{}
	if len(r.Data) == 0 {
		return m, nil
	}
	d := json.NewDecoder(bytes.NewReader(r.Data))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: record %s/%s data: %v", ErrInvalid, r.Kind, r.ID, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: record %s/%s data is not an object", ErrInvalid, r.Kind, r.ID)
	}
	return m, nil
}

// Cursor is the position of the last row a replica applied for a kind:
// pulls resume strictly after (UpdatedAt, ID).
type Cursor struct {
	UpdatedAt time.Time
	ID        string
}

// IsZero reports whether c is the start of the feed.
func (c Cursor) IsZero() bool { return c.UpdatedAt.IsZero() && c.ID == "" }

// Before reports whether c sorts before (t, id) in the feed's order.
func (c Cursor) Before(t time.Time, id string) bool {
	if !c.UpdatedAt.Equal(t) {
		return c.UpdatedAt.Before(t)
	}
	return c.ID < id
}

// OpType says what an op does to its record.
type OpType string

// The op types.
const (
	OpUpsert OpType = "upsert"
	OpDelete OpType = "delete"
)

// OpState is where an op stands in the outbox.
type OpState string

// The op states. An op is pending until it is sent; in-flight once sent and
// not answered for good (it is re-sent with the same OpID, which the authority
// answers idempotently); deferred while a conflict waits in the inbox; dead
// when refused for good or over its attempt budget.
const (
	StatePending  OpState = "pending"
	StateInFlight OpState = "in_flight"
	StateDeferred OpState = "deferred"
	StateDead     OpState = "dead"
)

// Op is one outbox entry. OpID is its idempotency key.
type Op struct {
	OpID          string
	Seq           int64 // outbox order, assigned by the store
	Kind          string
	ID            string
	Type          OpType
	Payload       json.RawMessage // the whole record's business fields (upsert)
	BaseUpdatedAt time.Time       // the authority version the edit started from; zero for a create
	BasePayload   json.RawMessage // that version's data, for three-way merges; nil when unknown
	ChangedFields []string        // nil = unknown (all fields)
	EditedAt      time.Time
	Force         bool // skip the authority's base check (clientWins)
	EnqueuedAt    time.Time
	TxID          string
	SchemaVersion int
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	State         OpState
}
