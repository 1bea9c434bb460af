package client

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/shaddock/shaddock/protocol"
	"github.com/shaddock/shaddock/tools/client/clienttest"
)

func TestRawConn(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Dict: []string{"echo.h.m"}, Heartbeat: 3, Lax: true})
			ctx := testCtx(t)
			r, err := DialRaw(ctx, s.Addr(), tr.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			hs, err := r.Handshake(ctx, map[string]int{"n": 1})
			if err != nil {
				t.Fatal(err)
			}
			if hs.Sys.Heartbeat != 3 || hs.Sys.Dict.Len() != 1 {
				t.Fatalf("handshake answer %+v", hs.Sys)
			}
			// Pomelo sends a heartbeat after the ack.
			p, err := r.ReadPackage(ctx)
			if err != nil || p.Type != protocol.Heartbeat {
				t.Fatalf("after the ack: %v, %v", p.Type, err)
			}

			// A read that times out leaves the connection usable.
			short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			defer cancel()
			if _, err := r.ReadPackage(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ReadPackage past its deadline: %v", err)
			}

			// A request written by hand, with the compressed route.
			if err := r.WritePackage(protocol.Data, []byte{0x01, 0x05, 0x00, 0x01, '7'}); err != nil {
				t.Fatal(err)
			}
			p, err = r.ReadPackage(ctx)
			if err != nil || p.Type != protocol.Data {
				t.Fatalf("response: %v, %v", p.Type, err)
			}
			m, err := protocol.DecodeMessage(p.Body, nil)
			if err != nil || m.Type != protocol.Response || m.ID != 5 || string(m.Body) != "7" {
				t.Fatalf("response %+v, %v", m, err)
			}

			// An invalid package type: the server closes the connection.
			if err := r.WriteBytes([]byte{9, 0, 0, 0}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.ReadPackage(ctx); !errors.Is(err, io.EOF) {
				t.Fatalf("after garbage: %v, want the server to close", err)
			}
		})
	}
}

func TestRawConnRefused(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Code: 501})
	ctx := testCtx(t)
	r, err := DialRaw(ctx, s.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var he *HandshakeError
	if _, err := r.Handshake(ctx, nil); !errors.As(err, &he) || he.Code != 501 {
		t.Fatalf("Handshake = %v, want code 501", err)
	}
}
