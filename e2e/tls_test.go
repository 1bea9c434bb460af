package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

// testCA is a certificate authority made by a test, and a server
// certificate it signed for 127.0.0.1, as PEM files in a folder.
type testCA struct {
	CAFile, CertFile, KeyFile string
	Pool                      *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shaddock e2e test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := &testCA{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server.key"), Pool: x509.NewCertPool()}
	c.Pool.AddCert(ca)
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{c.CAFile, "CERTIFICATE", caDER}, {c.CertFile, "CERTIFICATE", der}, {c.KeyFile, "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestChatOverTLS: with tlsCert/tlsKey on the frontends, a raw TLS client
// over TCP (and one over wss://) runs the chat: the gate's answer is the
// connector's host and client port as without TLS, enter, send and the
// pushes work, and a client that does not speak TLS gets nothing.
func TestChatOverTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	c := StartChatClusterWith(t, ClusterOptions{TLSCert: ca.CertFile, TLSKey: ca.KeyFile})
	tlsCfg := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	room := fmt.Sprintf("tls%d", time.Now().UnixNano())

	type user struct {
		c      *client.Client
		mu     sync.Mutex
		pushes []string
	}
	join := func(name, tr string) *user {
		g, err := client.Dial(ctx, c.GateAddr, client.Options{Transport: tr, TLS: tlsCfg})
		if err != nil {
			t.Fatalf("dial gate over TLS (%s): %v", tr, err)
		}
		var e entry
		if err := g.RequestJSON(ctx, "gate.gateHandler.queryEntry", map[string]string{"uid": name}, &e); err != nil {
			t.Fatal(err)
		}
		g.Close()
		if addr := fmt.Sprintf("%s:%d", e.Host, e.Port); e.Code != 200 || (addr != c.Connectors[0] && addr != c.Connectors[1]) {
			t.Fatalf("queryEntry over TLS answered %+v, want one of %v", e, c.Connectors)
		}
		u := &user{}
		u.c, err = client.Dial(ctx, fmt.Sprintf("%s:%d", e.Host, e.Port), client.Options{Transport: tr, TLS: tlsCfg,
			OnPush: func(route string, body []byte) {
				u.mu.Lock()
				u.pushes = append(u.pushes, route+" "+string(body))
				u.mu.Unlock()
			}})
		if err != nil {
			t.Fatalf("dial connector over TLS (%s): %v", tr, err)
		}
		t.Cleanup(func() { u.c.Close() })
		var r enterReply
		if err := u.c.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"username": name, "rid": room}, &r); err != nil || len(r.Users) == 0 {
			t.Fatalf("enter over TLS: %+v %v", r, err)
		}
		return u
	}
	alice := join("alice", client.TransportTCP)
	bob := join("bob", client.TransportWS)
	if err := bob.c.RequestJSON(ctx, "chat.chatHandler.send", map[string]string{"rid": room, "content": "over tls", "from": "bob", "target": "*"}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "onAdd and onChat over TLS", func() error {
		alice.mu.Lock()
		defer alice.mu.Unlock()
		got := strings.Join(alice.pushes, "\n")
		if !strings.Contains(got, `onAdd {"route":"onAdd","user":"bob"}`) || !strings.Contains(got, `onChat {"msg":"over tls","from":"bob","target":"*"}`) {
			return fmt.Errorf("alice (TLS over TCP) got %q", got)
		}
		return nil
	})

	// A plain client on a TLS port gets no handshake answer, only a close.
	nc, err := net.DialTimeout("tcp", c.GateAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("\x01\x00\x00\x0a{\"sys\":{}}"))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, err := nc.Read(buf); n > 0 && buf[0] == 0x01 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a plain client on the TLS port: %q %v, want the connection closed", buf[:n], err)
	}
}

// TestChatPageInChromiumTLS is TestChatPageInChromium with the page over
// https and the gate and connectors on wss://, with protobuf bodies: the
// certificate is signed by a CA this test makes, trusted by the browser
// profile's NSS database (certutil) and by Node (NODE_EXTRA_CA_CERTS).
func TestChatPageInChromiumTLS(t *testing.T) {
	const hint = "run .ci/run or: apt-get install -y chromium libnss3-tools && npm ci --prefix e2e/node"
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing (%v): %s", chromiumPath, err, hint)
	}
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Fatalf("certutil is missing (%v): %s", err, hint)
	}
	nodeDeps(t, "playwright-core")
	ca := newTestCA(t)

	// The browser profile: Chromium on Linux trusts the CAs of
	// $HOME/.pki/nssdb.
	home := t.TempDir()
	nssdb := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nssdb, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", "sql:" + nssdb, "-N", "--empty-password"},
		{"-d", "sql:" + nssdb, "-A", "-t", "C,,", "-n", "shaddock-e2e-ca", "-i", ca.CAFile},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}

	c := StartChatClusterWith(t, ClusterOptions{Protobuf: true, TLSCert: ca.CertFile, TLSKey: ca.KeyFile})
	artifacts := filepath.Join(repoRoot, "e2e", "artifacts", "tls")
	out := runNode(t, 120*time.Second, []string{"HOME=" + home, "NODE_EXTRA_CA_CERTS=" + ca.CAFile, "EXPECT_PROTOBUF=1"},
		"browser.js", "https://"+c.WebAddr+"/", artifacts, strings.Join(c.Connectors, ","))
	if !strings.Contains(out, "wss://127.0.0.1:") || !strings.Contains(out, "(protobuf bodies)") {
		t.Fatalf("browser.js did not report wss:// connections with protobuf bodies:\n%s", out)
	}
}
