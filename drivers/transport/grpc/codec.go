package grpc

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// lenientCodec is the server's codec: protobuf, except that a request it
// cannot decode (malformed bytes, or a string field that is not UTF-8,
// which proto3 forbids) is remembered instead of failed. gRPC turns a codec
// error into Internal, which the protocol reads as "retry later"; the
// server's interceptors answer a remembered message InvalidArgument (400)
// instead, so a client with bad input is told so and does not retry.
type lenientCodec struct {
	inner encoding.CodecV2
	mu    sync.Mutex
	bad   map[any]error
}

func newLenientCodec() *lenientCodec {
	return &lenientCodec{inner: encoding.GetCodecV2(proto.Name), bad: map[any]error{}}
}

func (c *lenientCodec) Name() string { return proto.Name }

func (c *lenientCodec) Marshal(v any) (mem.BufferSlice, error) { return c.inner.Marshal(v) }

func (c *lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.inner.Unmarshal(data, v)
	if err != nil {
		c.mu.Lock()
		c.bad[v] = err
		c.mu.Unlock()
	}
	return nil
}

// take returns (and forgets) the decoding error of message v.
func (c *lenientCodec) take(v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err, ok := c.bad[v]
	if ok {
		delete(c.bad, v)
	}
	return err
}
