package connector

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/shaddock/shaddock/pomelopb"
	"github.com/shaddock/shaddock/protocol"
)

func testProtos(t *testing.T) *pomelopb.Protos {
	t.Helper()
	p, err := pomelopb.Parse(
		[]byte(`{"connector.echo.echo":{"required string text":1,"optional uInt32 n":2},"onPush":{"required string text":1},"connector.echo.push":{"optional string x":1}}`),
		[]byte(`{"connector.echo.echo":{"required string text":1,"optional uInt32 n":2},"connector.echo.bind":{"required string UID":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// With Protos, requests on routes with a client proto are decoded from
// protobuf for the handler (which reads and writes JSON), and responses and
// pushes on routes with a server proto go out protobuf-encoded.
func TestProtobufBodies(t *testing.T) {
	protos := testProtos(t)
	srv := startServer(t, Config{Protos: protos})
	for _, useWS := range []bool{false, true} {
		c := dialRaw(t, srv.addr, useWS)
		c.sendPkg(protocol.Handshake, []byte(`{"sys":{"type":"test","protoVersion":0}}`))
		ans := c.expect(protocol.Handshake)
		if !bytes.Contains(ans.Body, append(append([]byte(`"protos":`), protos.HandshakeJSON()...), `,"useProto":true}`...)) {
			t.Fatalf("handshake answer lacks the protos: %s", ans.Body)
		}
		var resp protocol.HandshakeResponse
		json.Unmarshal(ans.Body, &resp)
		c.dict = resp.Sys.Dict
		c.sendPkg(protocol.HandshakeAck, nil)
		c.expect(protocol.Heartbeat)

		// {"text":"hi","n":300} in protobuf: echoed back as protobuf.
		wire, _ := hex.DecodeString("0a02686910ac02")
		c.sendMsg(protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.echo.echo", Body: wire})
		if m := c.expectMsg(protocol.Response); !bytes.Equal(m.Body, wire) {
			t.Fatalf("echo response %x, want %x", m.Body, wire)
		}
		// A JSON body on the same route still works (a pomelo-protobuf
		// message never starts with '{').
		m := c.request(2, "connector.echo.echo", `{"text":"hi","n":300}`)
		if !bytes.Equal(m.Body, wire) {
			t.Fatalf("JSON request: response %x, want %x", m.Body, wire)
		}
		// A push on a route with a server proto.
		c.sendMsg(protocol.Message{Type: protocol.Request, ID: 3, Route: "connector.echo.push", Body: []byte(`{"text":"pushed","extra":[1]}`)})
		push := c.expectMsg(protocol.Push)
		c.expectMsg(protocol.Response)
		if push.Route != "onPush" || hex.EncodeToString(push.Body) != "0a06707573686564" {
			t.Fatalf("push %s %x", push.Route, push.Body)
		}
		// A body that is not the route's protobuf gets a clear 400 (Pomelo's
		// decoder would throw and leave the request unanswered).
		m = c.request(4, "connector.echo.bind", "\x58\x01")
		if !strings.Contains(string(m.Body), `"code":400`) {
			t.Fatalf("bad protobuf body answered %s", m.Body)
		}
		// A response the server proto cannot carry goes out empty, as
		// Pomelo's encoder leaves it, with a log line.
		m = c.request(5, "connector.echo.echo", `{"n":1}`)
		if len(m.Body) != 0 {
			t.Fatalf("response lacking a required field: %x, want empty", m.Body)
		}
		contains(t, srv.logs, "body does not fit the route's server proto")
		// A handler that answers nothing on a route with a server proto:
		// an empty body, and no misfit logged.
		misfits := strings.Count(srv.logs.String(), "does not fit")
		c.sendMsg(protocol.Message{Type: protocol.Request, ID: 6, Route: "connector.echo.push", Body: []byte(`{"text":"x"}`)})
		c.expectMsg(protocol.Push)
		if m = c.expectMsg(protocol.Response); len(m.Body) != 0 {
			t.Fatalf("response to a handler that answered nothing: %x", m.Body)
		}
		if n := strings.Count(srv.logs.String(), "does not fit"); n != misfits {
			t.Fatalf("an empty answer was logged as a misfit:\n%s", srv.logs)
		}
	}
	// A client holding the protos' version is not sent them again.
	c := dialRaw(t, srv.addr, false)
	c.sendPkg(protocol.Handshake, []byte(`{"sys":{"protoVersion":"`+protos.Version()+`"}}`))
	if ans := c.expect(protocol.Handshake); bytes.Contains(ans.Body, []byte(`"protos"`)) || !bytes.Contains(ans.Body, []byte(`"useProto":true`)) {
		t.Fatalf("cached protos answer: %s", ans.Body)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// With TLS the one client port serves TLS over raw TCP and wss://.
func TestTLSClientPort(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startServer(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	for _, useWS := range []bool{false, true} {
		c := &rawClient{t: t, ws: useWS}
		c.dec.MaxBody = protocol.MaxBodyLen
		var err error
		if useWS {
			d := ws.Dialer{TLSConfig: &tls.Config{RootCAs: pool}}
			c.conn, _, _, err = d.Dial(context.Background(), "wss://"+srv.addr+"/")
		} else {
			c.conn, err = tls.Dial("tcp", srv.addr, &tls.Config{RootCAs: pool})
		}
		if err != nil {
			t.Fatalf("dial (ws %v): %v", useWS, err)
		}
		t.Cleanup(func() { c.conn.Close() })
		c.handshake()
		if m := c.request(1, "connector.echo.echo", `{"x":1}`); string(m.Body) != `{"x":1}` {
			t.Fatalf("echo over TLS (ws %v): %s", useWS, m.Body)
		}
		c.sendMsg(protocol.Message{Type: protocol.Request, ID: 2, Route: "connector.echo.push", Body: []byte(`{"p":1}`)})
		if p := c.expectMsg(protocol.Push); string(p.Body) != `{"p":1}` {
			t.Fatalf("push over TLS: %s", p.Body)
		}
		c.expectMsg(protocol.Response)
	}
	// A plain client on the TLS port gets nowhere, and the server says why.
	plain := dialRaw(t, srv.addr, false)
	plain.sendPkg(protocol.Handshake, []byte(`{"sys":{}}`))
	plain.expectClosed()
	contains(t, srv.logs, "tls: first record does not look like a TLS handshake")
}

// BenchmarkEncodePush is the per-broadcast cost on a connector: the push
// package encoded once, with JSON bodies and with a protobuf body
// transcoded from the JSON a backend sent.
func BenchmarkEncodePush(b *testing.B) {
	protos, err := pomelopb.Parse([]byte(`{"onChat":{"required string msg":1,"required string from":2,"required string target":3}}`), nil)
	if err != nil {
		b.Fatal(err)
	}
	dict, _ := protocol.NewDictionary([]string{"onChat"})
	body := []byte(`{"msg":"hello everyone in the room","from":"alice","target":"*"}`)
	for _, c := range []struct {
		name   string
		protos *pomelopb.Protos
	}{{"json", nil}, {"protobuf", protos}} {
		b.Run(c.name, func(b *testing.B) {
			srv, err := New(Config{Handler: echoMux().Serve, Dictionary: dict, Protos: c.protos, Logger: slogDiscard()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := srv.EncodePush("onChat", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
