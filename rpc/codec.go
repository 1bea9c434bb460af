package rpc

import (
	"errors"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// codec is the gRPC codec of cluster connections. The four batch messages
// that carry every forward, reply, push and acknowledgement (ForwardBatch,
// ForwardReplyBatch, PushBatch, PushReplyBatch) are encoded and decoded by
// hand here; everything else goes to gRPC's protobuf codec. The bytes on the
// wire are protobuf either way, so the codec's name is "proto" and peers of
// other builds read what it writes and it reads what they write.
//
// Why: protobuf-go's reflective codec was 21 % of a chat server's CPU and
// 5 % of a connector's on the chat benchmark, and its allocations (one per
// message, string and byte field: about 8 per forward decoded) a third of
// a chat server's. The whole-system effect was within the benchmark's
// noise (docs/performance-round2.md); the allocations are not. Decoding
// here allocates two blocks per batch element: the element's structs (its
// nested Session or Error included) and one copy of the element's bytes,
// which its string and byte fields share (strings alias the copy, which
// nothing writes). An element retained by its user keeps only its own
// bytes alive, as before.
//
// Anything this decoder does not know (a field added to cluster.proto by a
// newer peer, a wire type it does not expect, a nested message repeated for
// merging, invalid UTF-8) makes it hand the whole message to protobuf-go,
// which keeps unknown fields and reports errors exactly as before.
// codec_test.go fails when cluster.proto gains a field in these messages
// that the codec does not handle, and checks the codec against protobuf-go
// on random and fuzzed messages.
type codec struct{ fallback encoding.CodecV2 }

func newCodec() codec { return codec{fallback: encoding.GetCodecV2(grpcproto.Name)} }

// Name is that of gRPC's protobuf codec: the wire format is the same.
func (codec) Name() string { return grpcproto.Name }

// Marshal encodes the batch messages by hand and the rest with protobuf-go.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	size := -1
	switch m := v.(type) {
	case *clusterpb.ForwardBatch:
		size = sizeElements(m.Requests, sizeForwardRequest)
	case *clusterpb.ForwardReplyBatch:
		size = sizeElements(m.Replies, sizeForwardReply)
	case *clusterpb.PushBatch:
		size = sizeElements(m.Requests, sizePushRequest)
	case *clusterpb.PushReplyBatch:
		size = sizeElements(m.Replies, sizePushReply)
	}
	if size < 0 {
		// Not a batch, or one with a nil element, which protobuf-go
		// writes as an empty message.
		return c.fallback.Marshal(v)
	}
	// As gRPC's codec: small messages in a plain slice, larger ones in a
	// pooled buffer that gRPC returns once written.
	if mem.IsBelowBufferPoolingThreshold(size) {
		return mem.BufferSlice{mem.SliceBuffer(appendBatch(make([]byte, 0, size), v))}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = appendBatch((*buf)[:0], v)
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func appendBatch(b []byte, v any) []byte {
	switch m := v.(type) {
	case *clusterpb.ForwardBatch:
		b = appendElements(b, m.Requests, sizeForwardRequest, appendForwardRequest)
	case *clusterpb.ForwardReplyBatch:
		b = appendElements(b, m.Replies, sizeForwardReply, appendForwardReply)
	case *clusterpb.PushBatch:
		b = appendElements(b, m.Requests, sizePushRequest, appendPushRequest)
	case *clusterpb.PushReplyBatch:
		b = appendElements(b, m.Replies, sizePushReply, appendPushReply)
	}
	return b
}

// sizeElements is the size of a batch's elements (its field 1), or -1 if
// one is nil.
func sizeElements[T any](s []*T, size func(*T) int) int {
	n := 0
	for _, e := range s {
		if e == nil {
			return -1
		}
		n += sizeBytesField(size(e))
	}
	return n
}

// appendElements appends a batch's elements as its field 1.
func appendElements[T any](b []byte, s []*T, size func(*T) int, app func([]byte, *T) []byte) []byte {
	for _, e := range s {
		b = appendNested(b, 1, e, size, app)
	}
	return b
}

// Unmarshal decodes the batch messages by hand and the rest, or a batch
// with anything unexpected, with protobuf-go.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch v.(type) {
	case *clusterpb.ForwardBatch, *clusterpb.ForwardReplyBatch, *clusterpb.PushBatch, *clusterpb.PushReplyBatch:
	default:
		return c.fallback.Unmarshal(data, v)
	}
	var err error
	if len(data) == 1 {
		err = unmarshalBatch(data[0].ReadOnlyData(), v)
	} else {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		err = unmarshalBatch(buf.ReadOnlyData(), v)
		buf.Free()
	}
	if err != nil {
		return c.fallback.Unmarshal(data, v)
	}
	return nil
}

// errUnhandled sends a message to protobuf-go: it holds something this
// decoder leaves to it, or is malformed (protobuf-go says how).
var errUnhandled = errors.New("rpc codec: message left to protobuf-go")

// unmarshalBatch decodes b into v, one of the four batch messages, which it
// resets first as proto.Unmarshal does.
func unmarshalBatch(b []byte, v any) error {
	n, err := countElements(b)
	if err != nil {
		return err
	}
	switch m := v.(type) {
	case *clusterpb.ForwardBatch:
		m.Reset()
		m.Requests, err = decodeElements(b, n, decodeForwardRequest)
	case *clusterpb.ForwardReplyBatch:
		m.Reset()
		m.Replies, err = decodeElements(b, n, decodeForwardReply)
	case *clusterpb.PushBatch:
		m.Reset()
		m.Requests, err = decodeElements(b, n, decodePushRequest)
	case *clusterpb.PushReplyBatch:
		m.Reset()
		m.Replies, err = decodeElements(b, n, decodePushReply)
	}
	return err
}

// countElements counts a batch's elements (field 1, length-delimited, its
// only field).
func countElements(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 || num != 1 || typ != protowire.BytesType {
			return 0, errUnhandled
		}
		_, l := protowire.ConsumeBytes(b[k:])
		if l < 0 {
			return 0, errUnhandled
		}
		b = b[k+l:]
		n++
	}
	return n, nil
}

// decodeElements decodes the n elements of a batch countElements accepted
// (nil for none, as protobuf-go leaves an empty repeated field).
func decodeElements[T any](b []byte, n int, decode func([]byte) (*T, error)) ([]*T, error) {
	if n == 0 {
		return nil, nil
	}
	out := make([]*T, 0, n)
	for len(b) > 0 {
		_, _, k := protowire.ConsumeTag(b)
		e, l := protowire.ConsumeBytes(b[k:])
		r, err := decode(e)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		b = b[k+l:]
	}
	return out, nil
}

// fields walks the fields of one encoded message. Values are read at
// indexes into src; strings and byte fields are cut from one copy of src
// (made at the first of them), so a decoded element's fields share one
// allocation and none alias gRPC's buffer.
type fields struct {
	src  []byte
	own  []byte // the copy of src, once made
	i    int    // the next field starts at src[i]
	end  int    // the message ends at src[end] (a nested one may end before src does)
	num  protowire.Number
	typ  protowire.Type
	err  error
	vbeg int // for a length-delimited field: where its value starts, and its length
	vlen int
	v    uint64 // for a varint field
}

// next reads the next field's tag and value; false at the end or on an
// error (err set).
func (f *fields) next() bool {
	if f.i >= f.end || f.err != nil {
		return false
	}
	num, typ, k := protowire.ConsumeTag(f.src[f.i:f.end])
	if k < 0 {
		f.err = errUnhandled
		return false
	}
	f.i += k
	f.num, f.typ = num, typ
	switch typ {
	case protowire.VarintType:
		v, l := protowire.ConsumeVarint(f.src[f.i:f.end])
		if l < 0 {
			f.err = errUnhandled
			return false
		}
		f.v = v
		f.i += l
	case protowire.BytesType:
		l, k := protowire.ConsumeVarint(f.src[f.i:f.end])
		if k < 0 || l > uint64(f.end-f.i-k) {
			f.err = errUnhandled
			return false
		}
		f.vbeg, f.vlen = f.i+k, int(l)
		f.i += k + int(l)
	default:
		f.err = errUnhandled
		return false
	}
	return true
}

// want checks the current field's wire type; a mismatch leaves the
// message to protobuf-go.
func (f *fields) want(typ protowire.Type) bool {
	if f.typ != typ {
		f.err = errUnhandled
		return false
	}
	return true
}

// setVarint stores the current field, a varint, in an integer field
// (truncated to its width, as protobuf-go does); setBool, setString and
// setBytes store it in a field of theirs. Each checks the wire type first.
func setVarint[T ~uint64 | ~uint32 | ~int64 | ~int32](f *fields, p *T) {
	if f.want(protowire.VarintType) {
		*p = T(f.v)
	}
}

func (f *fields) setBool(p *bool) {
	if f.want(protowire.VarintType) {
		*p = f.v != 0
	}
}

func (f *fields) setString(p *string) {
	if f.want(protowire.BytesType) {
		*p = f.string()
	}
}

func (f *fields) setBytes(p *[]byte) {
	if f.want(protowire.BytesType) {
		*p = f.bytes()
	}
}

// nested reports whether the current field is a nested message to
// decode: length-delimited, and not seen before (seen: a repeated message
// field merges, which is left to protobuf-go).
func (f *fields) nested(seen bool) bool {
	if !f.want(protowire.BytesType) {
		return false
	}
	if seen {
		f.unhandled()
		return false
	}
	return true
}

// appendString appends the current field, a string, to s.
func (f *fields) appendString(s []string) []string {
	if f.want(protowire.BytesType) {
		s = append(s, f.string())
	}
	return s
}

// sub walks the fields of the current length-delimited value, a nested
// message; done hands back its copy of src and its error.
func (f *fields) sub() fields {
	return fields{src: f.src, own: f.own, i: f.vbeg, end: f.vbeg + f.vlen}
}

func (f *fields) done(sub *fields) {
	f.own = sub.own
	if sub.err != nil {
		f.err = sub.err
	}
}

// unhandled leaves the message to protobuf-go.
func (f *fields) unhandled() { f.err = errUnhandled }

func (f *fields) raw() []byte { return f.src[f.vbeg : f.vbeg+f.vlen] }

// bytes is the current length-delimited value as a byte field (nil when
// empty, as protobuf-go decodes a proto3 bytes field).
func (f *fields) bytes() []byte {
	if f.vlen == 0 {
		return nil
	}
	if f.own == nil {
		f.own = make([]byte, len(f.src))
		copy(f.own, f.src)
	}
	return f.own[f.vbeg : f.vbeg+f.vlen : f.vbeg+f.vlen]
}

// string is the current length-delimited value as a string field. Invalid
// UTF-8 is left to protobuf-go, which rejects it.
func (f *fields) string() string {
	if f.vlen == 0 {
		return ""
	}
	if !utf8.Valid(f.raw()) {
		f.err = errUnhandled
		return ""
	}
	b := f.bytes()
	// The copy is never written: the string may alias it.
	return unsafe.String(&b[0], len(b))
}

// int64s appends the current field's value to s: one varint, or a packed
// run of them.
func (f *fields) int64s(s []int64) []int64 {
	if f.typ == protowire.VarintType {
		return append(s, int64(f.v))
	}
	if f.typ != protowire.BytesType {
		f.err = errUnhandled
		return s
	}
	p := f.raw()
	n := 0
	for _, c := range p {
		if c < 0x80 {
			n++
		}
	}
	if s == nil {
		s = make([]int64, 0, n)
	}
	for len(p) > 0 {
		v, l := protowire.ConsumeVarint(p)
		if l < 0 {
			f.err = errUnhandled
			return s
		}
		s = append(s, int64(v))
		p = p[l:]
	}
	return s
}

type forwardRequestBlock struct {
	r clusterpb.ForwardRequest
	s clusterpb.Session
}

func decodeForwardRequest(e []byte) (*clusterpb.ForwardRequest, error) {
	blk := new(forwardRequestBlock)
	r := &blk.r
	f := fields{src: e, end: len(e)}
	for f.next() {
		switch f.num {
		case 1:
			setVarint(&f, &r.Seq)
		case 2:
			f.setString(&r.Route)
		case 3:
			f.setBytes(&r.Body)
		case 4:
			f.setBool(&r.Notify)
		case 5:
			if f.nested(r.Session != nil) {
				r.Session = &blk.s
				decodeSession(&f, r.Session)
			}
		case 6:
			setVarint(&f, &r.TimeoutMs)
		case 7:
			setVarint(&f, &r.TargetEpoch)
		default:
			f.unhandled()
		}
	}
	return r, f.err
}

// decodeSession decodes the Session at f's current field, sharing f's copy.
func decodeSession(f *fields, s *clusterpb.Session) {
	sub := f.sub()
	for sub.next() {
		switch sub.num {
		case 1:
			sub.setString(&s.FrontendId)
		case 2:
			setVarint(&sub, &s.Id)
		case 3:
			sub.setString(&s.Uid)
		case 6:
			sub.setBytes(&s.Settings)
		case 5:
			setVarint(&sub, &s.FrontendEpoch)
		default:
			sub.unhandled()
		}
	}
	f.done(&sub)
}

// decodeError decodes the Error at f's current field, sharing f's copy.
func decodeError(f *fields, e *clusterpb.Error) {
	sub := f.sub()
	for sub.next() {
		switch sub.num {
		case 1:
			setVarint(&sub, &e.Code)
		case 2:
			sub.setString(&e.Msg)
		default:
			sub.unhandled()
		}
	}
	f.done(&sub)
}

type forwardReplyBlock struct {
	r clusterpb.ForwardReply
	e clusterpb.Error
}

func decodeForwardReply(e []byte) (*clusterpb.ForwardReply, error) {
	blk := new(forwardReplyBlock)
	r := &blk.r
	f := fields{src: e, end: len(e)}
	for f.next() {
		switch f.num {
		case 1:
			setVarint(&f, &r.Seq)
		case 2:
			f.setBytes(&r.Body)
		case 3:
			if f.nested(r.Error != nil) {
				r.Error = &blk.e
				decodeError(&f, r.Error)
			}
		case 4:
			if !f.want(protowire.BytesType) {
				break
			}
			if r.Settings == nil {
				r.Settings = make(map[string]string)
			}
			decodeStringEntry(&f, r.Settings)
		default:
			f.unhandled()
		}
	}
	return r, f.err
}

// decodeStringEntry decodes the map<string, string> entry at f's current
// field into m (a missing key or value is "", a repeated key wins).
func decodeStringEntry(f *fields, m map[string]string) {
	sub := f.sub()
	var k, v string
	for sub.next() {
		switch sub.num {
		case 1:
			sub.setString(&k)
		case 2:
			sub.setString(&v)
		default:
			sub.unhandled()
		}
	}
	f.done(&sub)
	if f.err == nil {
		m[k] = v
	}
}

func decodePushRequest(e []byte) (*clusterpb.PushRequest, error) {
	r := new(clusterpb.PushRequest)
	f := fields{src: e, end: len(e)}
	for f.next() {
		switch f.num {
		case 1:
			setVarint(&f, &r.Seq)
		case 2:
			f.setString(&r.Route)
		case 3:
			f.setBytes(&r.Body)
		case 4:
			r.SessionIds = f.int64s(r.SessionIds)
		case 5:
			r.Uids = f.appendString(r.Uids)
		case 6:
			f.setBool(&r.Broadcast)
		case 7:
			f.setBool(&r.WantReply)
		case 8:
			setVarint(&f, &r.Epoch)
		default:
			f.unhandled()
		}
	}
	return r, f.err
}

type pushReplyBlock struct {
	r clusterpb.PushReply
	e clusterpb.Error
}

func decodePushReply(e []byte) (*clusterpb.PushReply, error) {
	blk := new(pushReplyBlock)
	r := &blk.r
	f := fields{src: e, end: len(e)}
	for f.next() {
		switch f.num {
		case 1:
			setVarint(&f, &r.Seq)
		case 2:
			r.MissingSessionIds = f.int64s(r.MissingSessionIds)
		case 3:
			r.MissingUids = f.appendString(r.MissingUids)
		case 4:
			if f.nested(r.Error != nil) {
				r.Error = &blk.e
				decodeError(&f, r.Error)
			}
		case 5:
			setVarint(&f, &r.Acked)
		case 6:
			setVarint(&f, &r.Epoch)
		default:
			f.unhandled()
		}
	}
	return r, f.err
}

// Sizes and encoders. Every field number here is below 16, so each tag is
// one byte. Fields are written in field-number order, zero values left out
// (proto3): each size and append helper below gives nothing for a zero
// value.

func sizeUint(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func sizeBool(v bool) int {
	if v {
		return 2
	}
	return 0
}

func sizeStr(s string) int {
	if s == "" {
		return 0
	}
	return sizeBytesField(len(s))
}

func sizeBin(v []byte) int {
	if len(v) == 0 {
		return 0
	}
	return sizeBytesField(len(v))
}

// sizeBytesField is the size of a length-delimited field of n bytes.
func sizeBytesField(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), 1)
}

func appendStr(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendStringField(b, num, s)
}

func appendBin(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// appendStringField appends a string field, empty or not (a map entry's
// key and value are written either way).
func appendStringField(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// appendNested appends a nested message of the given size, written by app.
func appendNested[T any](b []byte, num protowire.Number, m *T, size func(*T) int, app func([]byte, *T) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size(m)))
	return app(b, m)
}

func sizeSession(s *clusterpb.Session) int {
	return sizeStr(s.FrontendId) + sizeUint(uint64(s.Id)) + sizeStr(s.Uid) + sizeUint(s.FrontendEpoch) + sizeBin(s.Settings)
}

func appendSession(b []byte, s *clusterpb.Session) []byte {
	b = appendStr(b, 1, s.FrontendId)
	b = appendUint(b, 2, uint64(s.Id))
	b = appendStr(b, 3, s.Uid)
	b = appendUint(b, 5, s.FrontendEpoch)
	return appendBin(b, 6, s.Settings)
}

// Negative int32s take ten bytes, sign-extended, as in protobuf.

func sizeError(e *clusterpb.Error) int {
	return sizeUint(uint64(int64(e.Code))) + sizeStr(e.Msg)
}

func appendError(b []byte, e *clusterpb.Error) []byte {
	b = appendUint(b, 1, uint64(int64(e.Code)))
	return appendStr(b, 2, e.Msg)
}

func sizeForwardRequest(r *clusterpb.ForwardRequest) int {
	n := sizeUint(r.Seq) + sizeStr(r.Route) + sizeBin(r.Body) + sizeBool(r.Notify) +
		sizeUint(uint64(r.TimeoutMs)) + sizeUint(r.TargetEpoch)
	if r.Session != nil {
		n += sizeBytesField(sizeSession(r.Session))
	}
	return n
}

func appendForwardRequest(b []byte, r *clusterpb.ForwardRequest) []byte {
	b = appendUint(b, 1, r.Seq)
	b = appendStr(b, 2, r.Route)
	b = appendBin(b, 3, r.Body)
	b = appendBool(b, 4, r.Notify)
	if r.Session != nil {
		b = appendNested(b, 5, r.Session, sizeSession, appendSession)
	}
	b = appendUint(b, 6, uint64(r.TimeoutMs))
	return appendUint(b, 7, r.TargetEpoch)
}

func sizeForwardReply(r *clusterpb.ForwardReply) int {
	n := sizeUint(r.Seq) + sizeBin(r.Body)
	if r.Error != nil {
		n += sizeBytesField(sizeError(r.Error))
	}
	for k, v := range r.Settings {
		n += sizeBytesField(sizeStringEntry(k, v))
	}
	return n
}

func sizeStringEntry(k, v string) int {
	// protobuf-go writes a map entry's key and value even when empty.
	return sizeBytesField(len(k)) + sizeBytesField(len(v))
}

func appendForwardReply(b []byte, r *clusterpb.ForwardReply) []byte {
	b = appendUint(b, 1, r.Seq)
	b = appendBin(b, 2, r.Body)
	if r.Error != nil {
		b = appendNested(b, 3, r.Error, sizeError, appendError)
	}
	for k, v := range r.Settings {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeStringEntry(k, v)))
		b = appendStringField(b, 1, k)
		b = appendStringField(b, 2, v)
	}
	return b
}

func sizeInt64s(s []int64) int {
	if len(s) == 0 {
		return 0
	}
	return sizeBytesField(sizePackedInt64s(s))
}

func sizePackedInt64s(s []int64) int {
	n := 0
	for _, v := range s {
		n += protowire.SizeVarint(uint64(v))
	}
	return n
}

// appendInt64s appends s packed (proto3's default for repeated scalars).
func appendInt64s(b []byte, num protowire.Number, s []int64) []byte {
	if len(s) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizePackedInt64s(s)))
	for _, v := range s {
		b = protowire.AppendVarint(b, uint64(v))
	}
	return b
}

func sizeStrs(s []string) int {
	n := 0
	for _, u := range s {
		n += sizeBytesField(len(u))
	}
	return n
}

func appendStrs(b []byte, num protowire.Number, s []string) []byte {
	for _, u := range s {
		b = appendStringField(b, num, u)
	}
	return b
}

func sizePushRequest(r *clusterpb.PushRequest) int {
	return sizeUint(r.Seq) + sizeStr(r.Route) + sizeBin(r.Body) + sizeInt64s(r.SessionIds) + sizeStrs(r.Uids) +
		sizeBool(r.Broadcast) + sizeBool(r.WantReply) + sizeUint(r.Epoch)
}

func appendPushRequest(b []byte, r *clusterpb.PushRequest) []byte {
	b = appendUint(b, 1, r.Seq)
	b = appendStr(b, 2, r.Route)
	b = appendBin(b, 3, r.Body)
	b = appendInt64s(b, 4, r.SessionIds)
	b = appendStrs(b, 5, r.Uids)
	b = appendBool(b, 6, r.Broadcast)
	b = appendBool(b, 7, r.WantReply)
	return appendUint(b, 8, r.Epoch)
}

func sizePushReply(r *clusterpb.PushReply) int {
	n := sizeUint(r.Seq) + sizeInt64s(r.MissingSessionIds) + sizeStrs(r.MissingUids) + sizeUint(r.Acked) + sizeUint(r.Epoch)
	if r.Error != nil {
		n += sizeBytesField(sizeError(r.Error))
	}
	return n
}

func appendPushReply(b []byte, r *clusterpb.PushReply) []byte {
	b = appendUint(b, 1, r.Seq)
	b = appendInt64s(b, 2, r.MissingSessionIds)
	b = appendStrs(b, 3, r.MissingUids)
	if r.Error != nil {
		b = appendNested(b, 4, r.Error, sizeError, appendError)
	}
	b = appendUint(b, 5, r.Acked)
	return appendUint(b, 6, r.Epoch)
}
