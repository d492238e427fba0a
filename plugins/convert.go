package plugins

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/offsync/offsync/core"
	resolverv1 "github.com/offsync/offsync/plugins/proto/resolver/v1"
)

// Conversions between core's types and the wire messages. Times travel as
// UTC microseconds (0 = zero time); data as JSON bytes, untouched.

func microOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func timeOf(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func recordToProto(r *core.Record) *resolverv1.Record {
	if r == nil {
		return nil
	}
	return &resolverv1.Record{
		Kind: r.Kind, Id: r.ID,
		UpdatedAtUs: microOf(r.UpdatedAt), DeletedAtUs: microOf(r.DeletedAt), EditedAtUs: microOf(r.EditedAt),
		Data: r.Data,
	}
}

func recordFromProto(p *resolverv1.Record) *core.Record {
	if p == nil {
		return nil
	}
	return &core.Record{
		Kind: p.GetKind(), ID: p.GetId(),
		UpdatedAt: timeOf(p.GetUpdatedAtUs()), DeletedAt: timeOf(p.GetDeletedAtUs()), EditedAt: timeOf(p.GetEditedAtUs()),
		Data: rawOf(p.GetData()),
	}
}

func rawOf(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

func opTypeToProto(t core.OpType) resolverv1.OpType {
	switch t {
	case core.OpUpsert:
		return resolverv1.OpType_OP_TYPE_UPSERT
	case core.OpDelete:
		return resolverv1.OpType_OP_TYPE_DELETE
	}
	return resolverv1.OpType_OP_TYPE_UNSPECIFIED
}

func opTypeFromProto(t resolverv1.OpType) (core.OpType, error) {
	switch t {
	case resolverv1.OpType_OP_TYPE_UPSERT:
		return core.OpUpsert, nil
	case resolverv1.OpType_OP_TYPE_DELETE:
		return core.OpDelete, nil
	}
	return "", fmt.Errorf("%w: unknown op type %d", core.ErrInvalid, t)
}

func conflictToProto(c *core.Conflict) *resolverv1.Conflict {
	op := &c.Op
	return &resolverv1.Conflict{
		Kind: c.Kind, Id: c.ID,
		Op: &resolverv1.Op{
			OpId: op.OpID, Kind: op.Kind, Id: op.ID, Type: opTypeToProto(op.Type), Payload: op.Payload,
			BaseUpdatedAtUs: microOf(op.BaseUpdatedAt), BasePayload: op.BasePayload,
			ChangedFields: op.ChangedFields, ChangedFieldsKnown: op.ChangedFields != nil,
			EditedAtUs: microOf(op.EditedAt), EnqueuedAtUs: microOf(op.EnqueuedAt), TxId: op.TxID,
			SchemaVersion: int32(op.SchemaVersion), Attempts: int32(op.Attempts), Force: op.Force,
		},
		Base: recordToProto(c.Base), Local: recordToProto(c.Local), Server: recordToProto(c.Server),
		ChangedFields: c.ChangedFields, ChangedFieldsKnown: c.ChangedFields != nil,
		Strategy: c.Strategy, DetectedAtUs: microOf(c.DetectedAt),
	}
}

func fieldsOf(names []string, known bool) []string {
	if !known {
		return nil
	}
	if names == nil {
		return []string{}
	}
	return names
}

func conflictFromProto(p *resolverv1.Conflict) (core.Conflict, error) {
	if p == nil || p.GetOp() == nil {
		return core.Conflict{}, fmt.Errorf("%w: conflict without an op", core.ErrInvalid)
	}
	po := p.GetOp()
	typ, err := opTypeFromProto(po.GetType())
	if err != nil {
		return core.Conflict{}, fmt.Errorf("conflict %s/%s: %w", p.GetKind(), p.GetId(), err)
	}
	return core.Conflict{
		Kind: p.GetKind(), ID: p.GetId(),
		Op: core.Op{
			OpID: po.GetOpId(), Kind: po.GetKind(), ID: po.GetId(), Type: typ, Payload: rawOf(po.GetPayload()),
			BaseUpdatedAt: timeOf(po.GetBaseUpdatedAtUs()), BasePayload: rawOf(po.GetBasePayload()),
			ChangedFields: fieldsOf(po.GetChangedFields(), po.GetChangedFieldsKnown()),
			EditedAt:      timeOf(po.GetEditedAtUs()), EnqueuedAt: timeOf(po.GetEnqueuedAtUs()), TxID: po.GetTxId(),
			SchemaVersion: int(po.GetSchemaVersion()), Attempts: int(po.GetAttempts()), Force: po.GetForce(),
			State: core.StateInFlight,
		},
		Base: recordFromProto(p.GetBase()), Local: recordFromProto(p.GetLocal()), Server: recordFromProto(p.GetServer()),
		ChangedFields: fieldsOf(p.GetChangedFields(), p.GetChangedFieldsKnown()),
		Strategy:      p.GetStrategy(), DetectedAt: timeOf(p.GetDetectedAtUs()),
	}, nil
}

var actionsToProto = map[core.Action]resolverv1.Action{
	core.ActionAcceptServer: resolverv1.Action_ACTION_ACCEPT_SERVER,
	core.ActionAcceptClient: resolverv1.Action_ACTION_ACCEPT_CLIENT,
	core.ActionAcceptMerged: resolverv1.Action_ACTION_ACCEPT_MERGED,
	core.ActionDefer:        resolverv1.Action_ACTION_DEFER,
	core.ActionDiscard:      resolverv1.Action_ACTION_DISCARD,
}

var actionsFromProto = map[resolverv1.Action]core.Action{
	resolverv1.Action_ACTION_ACCEPT_SERVER: core.ActionAcceptServer,
	resolverv1.Action_ACTION_ACCEPT_CLIENT: core.ActionAcceptClient,
	resolverv1.Action_ACTION_ACCEPT_MERGED: core.ActionAcceptMerged,
	resolverv1.Action_ACTION_DEFER:         core.ActionDefer,
	resolverv1.Action_ACTION_DISCARD:       core.ActionDiscard,
}

// resolutionToProto encodes a resolver's answer (plugin side). An unknown
// action is sent as it is, so the host reports it.
func resolutionToProto(r core.Resolution) (*resolverv1.Resolution, error) {
	a, ok := actionsToProto[r.Action]
	if !ok {
		a = resolverv1.Action(r.Action)
	}
	out := &resolverv1.Resolution{Action: a}
	if r.Action == core.ActionAcceptMerged && r.Data != nil {
		b, err := json.Marshal(r.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: merged data: %v", core.ErrInvalid, err)
		}
		out.Data = b
	}
	return out, nil
}

// resolutionFromProto decodes and checks a plugin's answer (host side).
func resolutionFromProto(p *resolverv1.Resolution) (core.Resolution, error) {
	if p == nil {
		return core.Resolution{}, fmt.Errorf("%w: empty resolution", core.ErrInvalid)
	}
	a, ok := actionsFromProto[p.GetAction()]
	if !ok {
		return core.Resolution{}, fmt.Errorf("%w: unknown resolution action %d", core.ErrInvalid, p.GetAction())
	}
	if a != core.ActionAcceptMerged {
		return core.Resolution{Action: a}, nil
	}
	if len(p.GetData()) == 0 {
		return core.Resolution{}, fmt.Errorf("%w: accept_merged without data", core.ErrInvalid)
	}
	d := json.NewDecoder(bytes.NewReader(p.GetData()))
	d.UseNumber()
	var data map[string]any
	if err := d.Decode(&data); err != nil || data == nil {
		return core.Resolution{}, fmt.Errorf("%w: merged data is not a JSON object", core.ErrInvalid)
	}
	if d.More() {
		return core.Resolution{}, fmt.Errorf("%w: merged data has trailing content", core.ErrInvalid)
	}
	return core.AcceptMerged(data), nil
}
