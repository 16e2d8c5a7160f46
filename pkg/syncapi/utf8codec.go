package syncapi

import (
	"context"
	"errors"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A request whose string field is not UTF-8 fails in proto's Unmarshal, before any
// handler or interceptor runs, and grpc-go answers every codec error with Internal
// ("grpc: failed to unmarshal the received message", rpc_util.go recv): the code a
// codec returns is not kept. So the server's codec (utf8Codec) lets such a request
// through, marked, and the first interceptor (refuseMarked) answers it
// InvalidArgument, naming the field as the validation does, before anything reads it.

// utf8Codec is grpc's proto codec, except that a message refused only for invalid
// UTF-8 is accepted, partly decoded, and remembered in marked with the field to name.
type utf8Codec struct {
	encoding.CodecV2
	marked *sync.Map // message (pointer) -> field path
}

func newUTF8Codec() utf8Codec {
	return utf8Codec{CodecV2: encoding.GetCodecV2("proto"), marked: &sync.Map{}}
}

func (c utf8Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	var bad interface{ InvalidUTF8() bool }
	m, ok := v.(proto.Message)
	if err == nil || !ok || !errors.As(err, &bad) || !bad.InvalidUTF8() {
		return err
	}
	field := invalidUTF8Field(data.Materialize(), m.ProtoReflect().Descriptor(), "")
	if field == "" {
		field = "a string field"
	}
	c.marked.Store(v, field)
	return nil
}

// take reports the field of a marked request, and forgets it.
func (c utf8Codec) take(req any) (string, bool) {
	if _, ok := req.(proto.Message); !ok {
		return "", false
	}
	f, ok := c.marked.LoadAndDelete(req)
	if !ok {
		return "", false
	}
	return f.(string), true
}

func (c utf8Codec) refusal(field string) error {
	return invalidf(field, "not valid UTF-8", "send UTF-8 text")
}

// unary answers a marked request InvalidArgument.
func (c utf8Codec) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if field, ok := c.take(req); ok {
			return nil, c.refusal(field)
		}
		return handler(ctx, req)
	}
}

// stream answers a marked request of a stream InvalidArgument: RecvMsg fails.
func (c utf8Codec) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, utf8Stream{ServerStream: ss, codec: c})
	}
}

type utf8Stream struct {
	grpc.ServerStream
	codec utf8Codec
}

func (s utf8Stream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if field, ok := s.codec.take(m); ok {
		return s.codec.refusal(field)
	}
	return nil
}

// invalidUTF8Field is the path ("source.login") of the first string field of b, a
// message of type md, that is not UTF-8; "" when none is found.
func invalidUTF8Field(b []byte, md protoreflect.MessageDescriptor, prefix string) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil {
			continue
		}
		name := prefix + string(fd.Name())
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
			return name
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			if f := invalidUTF8Field(v, fd.Message(), name+"."); f != "" {
				return f
			}
		case fd.IsMap():
			// A map entry: key 1, value 2, named as the map.
			if f := invalidUTF8Field(v, fd.Message(), name+"."); f != "" {
				return name
			}
		}
	}
	return ""
}
