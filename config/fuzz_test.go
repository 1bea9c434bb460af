package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(example, "development")
	if data, err := os.ReadFile("testdata/servers.toml"); err == nil {
		f.Add(string(data), "development")
		f.Add(string(data), "production")
	}
	for _, tc := range errorCases {
		env := tc.env
		if env == "" {
			env = "dev"
		}
		f.Add(tc.file, env)
	}
	f.Fuzz(func(t *testing.T, file, env string) {
		lines := strings.Split(file, "\n")
		e, err := Parse("servers.toml", []byte(file), env)
		e2, err2 := Parse("servers.toml", []byte(file), env)
		if !reflect.DeepEqual(e, e2) || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			if e != nil {
				t.Fatalf("Parse returned both an Env and %v", err)
			}
			if !strings.HasPrefix(err.Error(), "servers.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			for _, err := range errs {
				var e *Error
				if errors.As(err, &e) && (e.Line < 0 || e.Line > len(lines)) {
					t.Fatalf("error names line %d of a %d-line file: %v", e.Line, len(lines), e)
				}
			}
			return
		}
		if e.Name != env {
			t.Fatalf("Name = %q, want %q", e.Name, env)
		}
		checkInvariants(t, e)
		for _, s := range e.Servers {
			if s.Line > len(lines) || !strings.ContainsAny(lines[s.Line-1], "[{") {
				t.Fatalf("%s: Line %d is not a [[header]] or inline table", s.ID, s.Line)
			}
		}
		if _, err := Environments("servers.toml", []byte(file)); err != nil {
			t.Fatalf("Parse succeeded but Environments failed: %v", err)
		}
	})
}

// checkInvariants asserts what every successfully parsed Env promises.
func checkInvariants(t *testing.T, e *Env) {
	t.Helper()
	if e.Binary == "" || e.Base == "" {
		t.Fatalf("Binary %q, Base %q", e.Binary, e.Base)
	}
	validPort := func(p int) bool { return p >= 1 && p <= 65535 }
	m := e.Master
	if m.ID == "" || m.Host == "" || !validPort(m.Port) || m.AdminHost == "" || (m.AdminPort != 0 && !validPort(m.AdminPort)) {
		t.Fatalf("Master = %+v", m)
	}
	if !validPort(e.SSH.Port) || e.Rolling.DrainTimeout <= 0 || e.Rolling.StartTimeout <= 0 {
		t.Fatalf("SSH %+v, Rolling %+v", e.SSH, e.Rolling)
	}
	switch e.LB.Driver {
	case "", LBHAProxy, LBCommand:
	default:
		t.Fatalf("LB.Driver = %q", e.LB.Driver)
	}
	if !slices.IsSortedFunc(e.Servers, func(a, b Server) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatal("Servers not sorted by ID")
	}
	addr := func(h string, p int) string { return net.JoinHostPort(strings.ToLower(h), strconv.Itoa(p)) }
	ids := map[string]bool{m.ID: true}
	addrs := map[string]bool{addr(m.Host, m.Port): true}
	if m.AdminPort != 0 {
		if addrs[addr(m.AdminHost, m.AdminPort)] {
			t.Fatalf("master admin address %s:%d used twice", m.AdminHost, m.AdminPort)
		}
		addrs[addr(m.AdminHost, m.AdminPort)] = true
	}
	for _, s := range e.Servers {
		if s.ID == "" || ids[s.ID] {
			t.Fatalf("id %q empty or used twice", s.ID)
		}
		ids[s.ID] = true
		if !typeRE.MatchString(s.Type) || s.Host == "" || !validPort(s.Port) || s.Line < 1 {
			t.Fatalf("server %+v", s)
		}
		if a := addr(s.Host, s.Port); addrs[a] {
			t.Fatalf("%s: address %s used twice", s.ID, a)
		} else {
			addrs[a] = true
		}
		if s.Frontend {
			if s.ClientHost == "" || !validPort(s.ClientPort) {
				t.Fatalf("frontend %+v without client address", s)
			}
			if a := addr(s.ClientHost, s.ClientPort); addrs[a] {
				t.Fatalf("%s: client address %s used twice", s.ID, a)
			} else {
				addrs[a] = true
			}
		} else if s.ClientHost != "" || s.ClientPort != 0 {
			t.Fatalf("backend %+v with a client address", s)
		}
		if s.Group != "" && s.Group != "a" && s.Group != "b" {
			t.Fatalf("group %q", s.Group)
		}
		if got, ok := e.Server(s.ID); !ok || got.ID != s.ID {
			t.Fatalf("Server(%q) = %+v, %v", s.ID, got, ok)
		}
	}
	types := e.Types()
	if !slices.IsSorted(types) {
		t.Fatalf("Types() = %v not sorted", types)
	}
	n := 0
	for _, typ := range types {
		n += len(e.ServersOfType(typ))
	}
	if n != len(e.Servers) {
		t.Fatalf("ServersOfType over Types() covers %d of %d servers", n, len(e.Servers))
	}
}
