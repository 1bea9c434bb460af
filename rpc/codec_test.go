package rpc

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// codecFields is every field of the messages the codec encodes by hand, as
// "Message.field=number:kind". A field added to cluster.proto in one of
// them fails TestCodecCoversEveryField until codec.go handles it and it is
// listed here (and randomBatch fills it).
var codecFields = []string{
	"Error.code=1:int32", "Error.msg=2:string",
	"ForwardBatch.requests=1:message",
	"ForwardReply.body=2:bytes", "ForwardReply.error=3:message", "ForwardReply.seq=1:uint64", "ForwardReply.settings=4:message",
	"ForwardReplyBatch.replies=1:message",
	"ForwardRequest.body=3:bytes", "ForwardRequest.notify=4:bool", "ForwardRequest.route=2:string", "ForwardRequest.seq=1:uint64",
	"ForwardRequest.session=5:message", "ForwardRequest.target_epoch=7:uint64", "ForwardRequest.timeout_ms=6:uint32",
	"PushBatch.requests=1:message",
	"PushReply.acked=5:uint64", "PushReply.epoch=6:uint64", "PushReply.error=4:message", "PushReply.missing_session_ids=2:int64",
	"PushReply.missing_uids=3:string", "PushReply.seq=1:uint64",
	"PushReplyBatch.replies=1:message",
	"PushRequest.body=3:bytes", "PushRequest.broadcast=6:bool", "PushRequest.epoch=8:uint64", "PushRequest.route=2:string",
	"PushRequest.seq=1:uint64", "PushRequest.session_ids=4:int64", "PushRequest.uids=5:string", "PushRequest.want_reply=7:bool",
	"Session.frontend_epoch=5:uint64", "Session.frontend_id=1:string", "Session.id=2:int64", "Session.settings=6:bytes", "Session.uid=3:string",
	"SettingsEntry.key=1:string", "SettingsEntry.value=2:string",
}

func TestCodecCoversEveryField(t *testing.T) {
	var got []string
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fs := md.Fields()
		for i := range fs.Len() {
			f := fs.Get(i)
			got = append(got, fmt.Sprintf("%s.%s=%d:%s", md.Name(), f.Name(), f.Number(), f.Kind()))
			if f.Message() != nil {
				walk(f.Message())
			}
		}
	}
	for _, m := range []proto.Message{&clusterpb.ForwardBatch{}, &clusterpb.ForwardReplyBatch{}, &clusterpb.PushBatch{}, &clusterpb.PushReplyBatch{}} {
		walk(m.ProtoReflect().Descriptor())
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(codecFields))
	if !slices.Equal(got, want) {
		t.Fatalf("the batch messages of cluster.proto changed: extend rpc/codec.go and codecFields\n got %q\nwant %q", got, want)
	}
}

// randomString mixes ASCII and multi-byte UTF-8, and is sometimes empty.
func randomString(r *rand.Rand) string {
	switch r.IntN(4) {
	case 0:
		return ""
	case 1:
		return "chat.chatHandler.send"
	case 2:
		return strings.Repeat("é世", r.IntN(5)) + "x"
	}
	b := make([]byte, r.IntN(40))
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

func randomBytes(r *rand.Rand) []byte {
	if r.IntN(4) == 0 {
		return nil
	}
	b := make([]byte, r.IntN(300))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randomUint spans every varint length, zero included.
func randomUint(r *rand.Rand) uint64 {
	if r.IntN(4) == 0 {
		return 0
	}
	return r.Uint64() >> r.IntN(64)
}

func randomInt64s(r *rand.Rand) []int64 {
	if r.IntN(3) == 0 {
		return nil
	}
	s := make([]int64, 1+r.IntN(20))
	for i := range s {
		s[i] = int64(randomUint(r))
		if r.IntN(5) == 0 {
			s[i] = -s[i] - 1
		}
	}
	return s
}

func randomStrings(r *rand.Rand) []string {
	if r.IntN(3) == 0 {
		return nil
	}
	s := make([]string, 1+r.IntN(5))
	for i := range s {
		s[i] = randomString(r)
	}
	return s
}

func randomError(r *rand.Rand) *clusterpb.Error {
	if r.IntN(3) != 0 {
		return nil
	}
	code := int32(r.Uint32())
	if r.IntN(3) == 0 {
		code = 0
	}
	return &clusterpb.Error{Code: code, Msg: randomString(r)}
}

// randomBatch returns one of the four batch messages with every field
// exercised: zero and non-zero values, negative ids and codes, empty and
// multi-byte strings, absent and empty nested messages.
func randomBatch(r *rand.Rand, kind int) proto.Message {
	n := r.IntN(6)
	switch kind {
	case 0:
		m := &clusterpb.ForwardBatch{}
		for range n {
			q := &clusterpb.ForwardRequest{Seq: randomUint(r), Route: randomString(r), Body: randomBytes(r),
				Notify: r.IntN(2) == 0, TimeoutMs: uint32(randomUint(r)), TargetEpoch: randomUint(r)}
			if r.IntN(4) != 0 {
				q.Session = &clusterpb.Session{}
				if r.IntN(5) != 0 {
					q.Session = &clusterpb.Session{FrontendId: randomString(r), Id: int64(randomUint(r)), Uid: randomString(r),
						Settings: randomBytes(r), FrontendEpoch: randomUint(r)}
				}
			}
			m.Requests = append(m.Requests, q)
		}
		return m
	case 1:
		m := &clusterpb.ForwardReplyBatch{}
		for range n {
			p := &clusterpb.ForwardReply{Seq: randomUint(r), Body: randomBytes(r), Error: randomError(r)}
			if r.IntN(3) == 0 {
				p.Settings = map[string]string{}
				for range r.IntN(4) {
					p.Settings[randomString(r)] = randomString(r)
				}
			}
			m.Replies = append(m.Replies, p)
		}
		return m
	case 2:
		m := &clusterpb.PushBatch{}
		for range n {
			m.Requests = append(m.Requests, &clusterpb.PushRequest{Seq: randomUint(r), Route: randomString(r), Body: randomBytes(r),
				SessionIds: randomInt64s(r), Uids: randomStrings(r), Broadcast: r.IntN(2) == 0, WantReply: r.IntN(2) == 0,
				Epoch: randomUint(r)})
		}
		return m
	default:
		m := &clusterpb.PushReplyBatch{}
		for range n {
			m.Replies = append(m.Replies, &clusterpb.PushReply{Seq: randomUint(r), MissingSessionIds: randomInt64s(r),
				MissingUids: randomStrings(r), Error: randomError(r), Acked: randomUint(r), Epoch: randomUint(r)})
		}
		return m
	}
}

func marshalFast(t testing.TB, c codec, m proto.Message) []byte {
	t.Helper()
	bs, err := c.Marshal(m)
	if err != nil {
		t.Fatalf("codec.Marshal: %v", err)
	}
	defer bs.Free()
	return bs.Materialize()
}

// TestCodecMatchesProtobuf checks both directions against protobuf-go on
// random messages: what the codec writes, protobuf-go reads back equal (and
// it is exactly proto.Size long), and what protobuf-go writes, the codec
// reads back equal, with no field left to the fallback.
func TestCodecMatchesProtobuf(t *testing.T) {
	c := newCodec()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 4000 {
		m := randomBatch(r, i%4)
		b := marshalFast(t, c, m)
		if len(b) != proto.Size(m) {
			t.Fatalf("%T: codec wrote %d bytes, proto.Size is %d", m, len(b), proto.Size(m))
		}
		back := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, back); err != nil {
			t.Fatalf("%T: protobuf-go cannot read the codec's bytes: %v", m, err)
		}
		if !proto.Equal(m, back) {
			t.Fatalf("codec wrote %v\nprotobuf-go read %v", m, back)
		}

		ref, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got := m.ProtoReflect().New().Interface()
		if err := unmarshalBatch(ref, got); err != nil {
			t.Fatalf("%T: the codec left protobuf-go's encoding of %v to the fallback: %v", m, m, err)
		}
		if !proto.Equal(m, got) {
			t.Fatalf("protobuf-go wrote %v\ncodec read %v", m, got)
		}
	}
}

// TestCodecDecodesUnpackedIDs: protobuf readers must accept repeated
// scalars both packed and one per field, whichever the writer chose.
func TestCodecDecodesUnpackedIDs(t *testing.T) {
	var e []byte
	e = protowire.AppendTag(e, 4, protowire.VarintType)
	e = protowire.AppendVarint(e, 7)
	e = appendInt64s(e, 4, []int64{-1, 300})
	e = protowire.AppendTag(e, 4, protowire.VarintType)
	e = protowire.AppendVarint(e, 9)
	b := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), e)
	var got clusterpb.PushBatch
	if err := unmarshalBatch(b, &got); err != nil {
		t.Fatal(err)
	}
	var want clusterpb.PushBatch
	if err := proto.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, &want) || !slices.Equal(got.Requests[0].SessionIds, []int64{7, -1, 300, 9}) {
		t.Fatalf("got %v, want %v", &got, &want)
	}
}

// TestCodecLeavesTheUnusualToProtobuf: an unknown field (a newer peer's),
// a nested message repeated (merged), invalid UTF-8 and truncated input go
// to protobuf-go, whose result (unknown fields kept, or an error) the codec
// returns.
func TestCodecLeavesTheUnusualToProtobuf(t *testing.T) {
	elem := func(fields ...[]byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), slices.Concat(fields...))
	}
	str := func(num protowire.Number, s string) []byte { return appendStringField(nil, num, s) }
	session := func(s *clusterpb.Session) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), appendSession(nil, s))
	}
	cases := []struct {
		name    string
		b       []byte
		m       proto.Message
		wantErr bool
	}{
		{"unknown field", elem(str(2, "r"), appendUint(nil, 15, 42)), &clusterpb.ForwardBatch{}, false},
		{"unknown field in a session", elem(protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), str(9, "x"))), &clusterpb.ForwardBatch{}, false},
		{"unknown batch field", appendUint(nil, 2, 1), &clusterpb.PushBatch{}, false},
		{"session merged", elem(session(&clusterpb.Session{Uid: "a"}), session(&clusterpb.Session{Id: 3})), &clusterpb.ForwardBatch{}, false},
		{"wrong wire type (protobuf-go keeps it as unknown)", elem(appendUint(nil, 2, 1)), &clusterpb.ForwardBatch{}, false},
		{"invalid UTF-8", elem(str(2, "\xff\xfe")), &clusterpb.PushBatch{}, true},
		{"invalid UTF-8 in a map key", elem(protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), str(1, "\xff"))), &clusterpb.ForwardReplyBatch{}, true},
		{"truncated", elem(str(2, "route"))[:5], &clusterpb.ForwardBatch{}, true},
		{"bad packed ids", elem(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0x80})), &clusterpb.PushReplyBatch{}, true},
	}
	c := newCodec()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := unmarshalBatch(tc.b, tc.m.ProtoReflect().New().Interface()); err == nil {
				t.Fatal("the codec decoded it itself; it should leave it to protobuf-go")
			}
			got := tc.m.ProtoReflect().New().Interface()
			err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(tc.b)}, got)
			want := tc.m.ProtoReflect().New().Interface()
			wantErr := proto.Unmarshal(tc.b, want)
			if (err != nil) != tc.wantErr || (wantErr != nil) != tc.wantErr {
				t.Fatalf("codec error %v, protobuf-go error %v, want an error: %v", err, wantErr, tc.wantErr)
			}
			if err == nil && !proto.Equal(got, want) {
				t.Fatalf("codec %v, protobuf-go %v", got, want)
			}
		})
	}
}

// TestCodecCopiesOutOfGRPCsBuffer: gRPC reuses the buffer a message was
// read into, so nothing decoded may alias it.
func TestCodecCopiesOutOfGRPCsBuffer(t *testing.T) {
	c := newCodec()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 400 {
		m := randomBatch(r, i%4)
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		// Split in two, as gRPC may hand a message over in several buffers.
		half := len(b) / 2
		in := mem.BufferSlice{mem.SliceBuffer(b[:half]), mem.SliceBuffer(b[half:])}
		if i%2 == 0 {
			in = mem.BufferSlice{mem.SliceBuffer(b)}
		}
		got := m.ProtoReflect().New().Interface()
		if err := c.Unmarshal(in, got); err != nil {
			t.Fatal(err)
		}
		for j := range b {
			b[j] = 0xAA
		}
		if !proto.Equal(m, got) {
			t.Fatalf("overwriting the input changed the decoded message:\n%v\n%v", m, got)
		}
	}
}

// TestCodecPassesOtherMessagesToProtobuf: messages other than the four
// batches take gRPC's protobuf codec.
func TestCodecPassesOtherMessagesToProtobuf(t *testing.T) {
	c := newCodec()
	in := &clusterpb.CallBatch{Requests: []*clusterpb.CallRequest{{Seq: 5, Route: "r", Body: []byte("b"), From: "x"}}}
	bs, err := c.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := &clusterpb.CallBatch{}
	if err := c.Unmarshal(bs, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Fatalf("got %v, want %v", out, in)
	}
}

// TestCodecTreatsNilElementsAsProtobufDoes: a nil element (which the
// sizes here would panic on) goes to protobuf-go, which writes it as an
// empty message.
func TestCodecTreatsNilElementsAsProtobufDoes(t *testing.T) {
	c := newCodec()
	for _, m := range []proto.Message{
		&clusterpb.ForwardBatch{Requests: []*clusterpb.ForwardRequest{{Seq: 1}, nil}},
		&clusterpb.ForwardReplyBatch{Replies: []*clusterpb.ForwardReply{nil}},
		&clusterpb.PushBatch{Requests: []*clusterpb.PushRequest{nil}},
		&clusterpb.PushReplyBatch{Replies: []*clusterpb.PushReply{nil}},
	} {
		want, wantErr := proto.Marshal(m)
		bs, err := c.Marshal(m)
		if (err != nil) != (wantErr != nil) || string(bs.Materialize()) != string(want) {
			t.Errorf("%T with a nil element: codec %x (error %v), protobuf-go %x (error %v)", m, bs.Materialize(), err, want, wantErr)
		}
	}
}

// TestNodesWithAndWithoutTheCodecTalk: a node of a build without the
// codec (gRPC's protobuf codec) and one with it understand each other both
// ways, on every batch stream: forwards and their replies (with a session,
// settings and a reply's settings map), pushes down the frontend's feed
// with session ids and uids, and the replies naming the missing.
func TestNodesWithAndWithoutTheCodecTalk(t *testing.T) {
	var hand, plain countingCodec
	hand.CodecV2, plain.CodecV2 = newCodec(), encoding.GetCodecV2(grpcproto.Name)
	withHand := func(c *Config) { c.codec = &hand }
	withPlain := func(c *Config) { c.codec = &plain }
	for _, tc := range []struct {
		name           string
		feOpts, beOpts []func(*Config)
	}{
		{"frontend without", []func(*Config){withPlain}, []func(*Config){withHand}},
		{"backend without", []func(*Config){withHand}, []func(*Config){withPlain}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hand.reset()
			plain.reset()
			lnF, _ := net.Listen("tcp", "127.0.0.1:0")
			lnB, _ := net.Listen("tcp", "127.0.0.1:0")
			mf, mb := memberOn("fe-1", "connector", 5, lnF), memberOn("be-1", "chat", 9, lnB)
			mf.Frontend = true
			members := []Member{mf, mb}
			front := &fakeFrontend{}
			fe := startNode(t, mf, members, lnF, Handlers{Frontend: front}, tc.feOpts...)
			be := startNode(t, mb, members, lnB, Handlers{Forward: func(ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
				s := req.GetSession()
				return &clusterpb.ForwardReply{Body: fmt.Appendf(nil, "%s/%d/%s/%d:%s", s.GetUid(), s.GetId(), s.GetFrontendId(), req.TargetEpoch, req.Body),
					Settings: map[string]string{"packed": string(s.GetSettings()), "é": ""}}
			}}, tc.beOpts...)
			ctx := context.Background()
			p := feedWaiting(t, be, true)

			rep, err := fe.Forward(ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.echo", Body: []byte("hé"), TargetEpoch: 9,
				Session: &clusterpb.Session{FrontendId: "fe-1", Id: -7, Uid: "u7", Settings: []byte("\x03rid\x01r"), FrontendEpoch: 5}})
			if err != nil || string(rep.Body) != "u7/-7/fe-1/9:hé" || rep.Settings["packed"] != "\x03rid\x01r" || len(rep.Settings) != 2 {
				t.Fatalf("forward: %v %+v", err, rep)
			}
			prep, err := be.Push(ctx, "fe-1", &clusterpb.PushRequest{Route: "onChat", Body: []byte(`{"msg":"hi"}`),
				SessionIds: []int64{7, -1, 1 << 40}, Uids: []string{"u7", "ghost"}})
			if err != nil || !slices.Equal(prep.GetMissingUids(), []string{"ghost"}) {
				t.Fatalf("push: %v %+v", err, prep)
			}
			front.mu.Lock()
			got := front.pushes[len(front.pushes)-1]
			front.mu.Unlock()
			if string(got.Body) != `{"msg":"hi"}` || !slices.Equal(got.SessionIds, []int64{7, -1, 1 << 40}) || !got.WantReply || got.Epoch != 0 {
				t.Fatalf("pushed %+v", got)
			}
			if _, fed, _ := pushStream(p); !fed {
				t.Fatal("the push did not take the frontend's feed")
			}
			// Each node's own codec read what came to it: the backend's as
			// the server of the Forwards and PushFeed streams, the
			// frontend's as their client (so the hand codec is wired in
			// both roles, one per case).
			beCodec, feCodec := &hand, &plain
			if tc.name == "backend without" {
				beCodec, feCodec = &plain, &hand
			}
			if got, want := beCodec.read(), []string{"*clusterpb.ForwardBatch", "*clusterpb.PushReplyBatch"}; !slices.Equal(got, want) {
				t.Errorf("the backend's codec read %v, want %v", got, want)
			}
			if got, want := feCodec.read(), []string{"*clusterpb.ForwardReplyBatch", "*clusterpb.PushBatch"}; !slices.Equal(got, want) {
				t.Errorf("the frontend's codec read %v, want %v", got, want)
			}
		})
	}
	n, err := NewNode(Config{Self: Member{ID: "x"}, Secret: "s", Membership: NewMembership()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, ok := n.cfg.codec.(codec); !ok {
		t.Fatalf("a node's default codec is %T, not the hand-written one", n.cfg.codec)
	}
}

// countingCodec records the batch types a codec unmarshalled.
type countingCodec struct {
	encoding.CodecV2
	mu    sync.Mutex
	types map[string]bool
}

func (c *countingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c.mu.Lock()
	switch v.(type) {
	case *clusterpb.ForwardBatch, *clusterpb.ForwardReplyBatch, *clusterpb.PushBatch, *clusterpb.PushReplyBatch:
		if c.types == nil {
			c.types = map[string]bool{}
		}
		c.types[fmt.Sprintf("%T", v)] = true
	}
	c.mu.Unlock()
	return c.CodecV2.Unmarshal(data, v)
}

func (c *countingCodec) reset() {
	c.mu.Lock()
	c.types = nil
	c.mu.Unlock()
}

func (c *countingCodec) read() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.types))
}

// FuzzCodecUnmarshal: on any input the codec decodes what protobuf-go
// decodes, to an equal message, and fails where it fails.
func FuzzCodecUnmarshal(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 40 {
		m := randomBatch(r, i%4)
		b, _ := proto.Marshal(m)
		f.Add(uint8(i%4), b)
	}
	c := newCodec()
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		newMsg := func() proto.Message {
			return []proto.Message{&clusterpb.ForwardBatch{}, &clusterpb.ForwardReplyBatch{}, &clusterpb.PushBatch{}, &clusterpb.PushReplyBatch{}}[kind%4]
		}
		got, want := newMsg(), newMsg()
		err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(slices.Clone(b))}, got)
		wantErr := proto.Unmarshal(b, want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("codec error %v, protobuf-go error %v", err, wantErr)
		}
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("codec %v\nprotobuf-go %v", got, want)
		}
	})
}

// chatBatches are a forward batch and a push batch as the chat benchmark
// sends them: four requests of chat.chatHandler.send with their session,
// and four pushes of onChat to one session each.
func chatBatches() (*clusterpb.ForwardBatch, *clusterpb.PushBatch) {
	fb := &clusterpb.ForwardBatch{}
	pb := &clusterpb.PushBatch{}
	for i := range 4 {
		fb.Requests = append(fb.Requests, &clusterpb.ForwardRequest{Seq: uint64(100000 + i), Route: "chat.chatHandler.send",
			Body:      []byte(`{"rid":"room-3","content":"hello there, how are you","from":"user-17","target":"user-42"}`),
			Session:   &clusterpb.Session{FrontendId: "connector-server-1", Id: int64(1234 + i), Uid: fmt.Sprintf("user-%d*room-3", i), Settings: []byte("\x03rid\x06room-3"), FrontendEpoch: 1764000000000},
			TimeoutMs: 10000, TargetEpoch: 1764000000001})
		pb.Requests = append(pb.Requests, &clusterpb.PushRequest{Seq: uint64(200000 + i), Route: "onChat",
			Body: []byte(`{"msg":"hello there, how are you","from":"user-17","target":"user-42"}`), SessionIds: []int64{int64(1234 + i)}, Epoch: 1764000000000})
	}
	return fb, pb
}

// BenchmarkCodec compares the codec with gRPC's protobuf codec on the chat
// benchmark's batches (allocations included).
func BenchmarkCodec(b *testing.B) {
	fb, pb := chatBatches()
	for _, c := range []struct {
		name  string
		codec interface {
			Marshal(any) (mem.BufferSlice, error)
			Unmarshal(mem.BufferSlice, any) error
		}
	}{{"hand", newCodec()}, {"protobuf-go", newCodec().fallback}} {
		for _, m := range []proto.Message{fb, pb} {
			name := fmt.Sprintf("%s/%T", c.name, m)
			b.Run(name+"/marshal", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bs, err := c.codec.Marshal(m)
					if err != nil {
						b.Fatal(err)
					}
					bs.Free()
				}
			})
			enc, _ := proto.Marshal(m)
			b.Run(name+"/unmarshal", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					out := m.ProtoReflect().New().Interface()
					if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(enc)}, out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestCodecDecodeAllocations: decoding a batch allocates its element slice
// and, per element, one block for its structs and one copy of its bytes
// (a push's session ids take one more); protobuf-go took about 8 per
// forward.
func TestCodecDecodeAllocations(t *testing.T) {
	fb, pb := chatBatches()
	for _, c := range []struct {
		m    proto.Message
		want float64
	}{{fb, 1 + 2*4}, {pb, 1 + 3*4}} {
		enc, err := proto.Marshal(c.m)
		if err != nil {
			t.Fatal(err)
		}
		out := c.m.ProtoReflect().New().Interface()
		n := testing.AllocsPerRun(100, func() {
			if err := unmarshalBatch(enc, out); err != nil {
				t.Fatal(err)
			}
		})
		if n > c.want {
			t.Errorf("%T: %v allocations, want at most %v", c.m, n, c.want)
		}
		ref := testing.AllocsPerRun(100, func() { _ = proto.Unmarshal(enc, out) })
		t.Logf("%T: %v allocations (protobuf-go %v)", c.m, n, ref)
	}
}
