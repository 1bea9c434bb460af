package main

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/shaddock/shaddock/pomelopb"
)

// The shipped protos fit the chat's Go types: each push the chat sends
// encodes with its server proto (a required field missing would go out
// empty), and each request a protobuf client sends decodes into the
// handler's request type.
func TestProtosFitTheChatTypes(t *testing.T) {
	p, err := pomelopb.Parse(serverProtos, clientProtos)
	if err != nil {
		t.Fatal(err)
	}
	for route, v := range map[string]any{
		"onAdd":   userPush{Route: "onAdd", User: "alice"},
		"onLeave": userPush{Route: "onLeave", User: "alice"},
		"onChat":  chatPush{Msg: "hi", From: "alice", Target: "*"},
	} {
		body, _ := json.Marshal(v)
		m := p.Server(route)
		if m == nil {
			t.Fatalf("no server proto for %s", route)
		}
		if _, err := m.Encode(nil, body); err != nil {
			t.Errorf("%s %s: %v", route, body, err)
		}
	}
	for route, v := range map[string]any{
		"connector.entryHandler.enter": &enterRequest{Username: "alice", Rid: "r1"},
		"chat.chatHandler.send":        &sendRequest{Rid: "r1", Content: "hi", From: "alice", Target: "*"},
	} {
		m := p.Client(route)
		if m == nil {
			t.Fatalf("no client proto for %s", route)
		}
		body, _ := json.Marshal(v)
		wire, err := m.Encode(nil, body)
		if err != nil {
			t.Fatalf("%s: %v", route, err)
		}
		back, err := m.Decode(nil, wire)
		if err != nil {
			t.Fatalf("%s: %v", route, err)
		}
		got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := json.Unmarshal(back, got); err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("%s: %s decodes to %+v (%v), want %+v", route, back, got, err, v)
		}
	}
}
