// Package pomelopb implements Pomelo's protobuf bodies, the format of NetEase's
// pomelo-protobuf 0.4.0 that Pomelo 2.2.7 uses with useProtobuf: protos
// written in Pomelo's JSON format (serverProtos.json, clientProtos.json),
//
//	{"onChat": {"required string msg": 1, "optional uInt32 level": 2,
//	            "repeated Item items": 3, "message Item": {"required string name": 1}}}
//
// their version and the parsed form Pomelo sends clients in its handshake,
// and the transcoding of message bodies between JSON (what handlers read and
// write) and that wire format.
//
// The wire format resembles protocol buffers but is its own: int32 is
// zigzag-encoded like sInt32, a repeated field of numbers is written as one
// tag, an element count (not a byte length) and the values, and a decoder
// knows no field it has no proto for. Fields are written in the order of the
// JSON object's keys, as pomelo-protobuf writes them in the order of the
// JavaScript object's, so the bytes are the same as Pomelo's for the same
// message.
//
// Supported types are those pomelo-protobuf 0.4.0 encodes: uInt32, sInt32,
// int32, float, double, string and messages (nested "message X" entries of
// the containing message, or top-level "message X" entries of the same
// file). Protos that pomelo-protobuf would silently mangle (unknown types,
// uInt64/sInt64, which it writes without a value, duplicate tags, malformed
// keys) are refused when loaded.
//
// The package is pure encoding: no I/O, no state besides the immutable
// parsed protos, safe for concurrent use.
package pomelopb
