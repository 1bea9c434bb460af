package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Keys each table accepts. Read-only.
var (
	envKeys     = []string{"binary", "base", "logFormat", "master", "ssh", "lb", "rolling"}
	masterKeys  = []string{"id", "host", "port", "adminHost", "adminPort"}
	sshKeys     = []string{"user", "port", "identityFile", "knownHosts", "uploadBinary"}
	lbKeys      = []string{"driver", "haproxySocket", "haproxyBackend", "drainCommand", "enableCommand", "statusCommand"}
	rollingKeys = []string{"drainTimeout", "startTimeout"}
	serverKeys  = []string{"id", "host", "port", "clientHost", "clientPort", "frontend", "clusterCount", "group", "autoRestart", "args", "env", "tlsCert", "tlsKey", "metricsPort"}

	typeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	idRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// parser holds the state of one Parse call.
type parser struct {
	errorList
	lines *lineIndex
}

// decode parses the TOML text; syntax errors come back as file:line errors.
func decode(name string, data []byte) (*parser, map[string]any, error) {
	var root map[string]any
	if _, err := toml.Decode(string(data), &root); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, nil, &Error{File: name, Line: pe.Position.Line, Msg: "invalid TOML: " + pe.Message}
		}
		return nil, nil, &Error{File: name, Msg: "invalid TOML: " + err.Error()}
	}
	return &parser{errorList: errorList{file: name}, lines: indexLines(data)}, root, nil
}

// environments returns the sorted top-level tables and reports every
// top-level key that is not one.
func (p *parser) environments(root map[string]any) []string {
	var envs []string
	for _, k := range sortedKeys(root) {
		if _, ok := root[k].(map[string]any); ok {
			envs = append(envs, k)
			continue
		}
		p.add(p.lines.line(k), "%s: top-level keys must be environment tables like [%s], not %s",
			k, k, typeName(root[k]))
	}
	return envs
}

func parse(name string, data []byte, envName string) (*Env, error) {
	p, root, envs, err := top(name, data)
	if err != nil {
		return nil, err
	}
	m, ok := root[envName].(map[string]any)
	if !ok {
		have := "the file has none"
		if len(envs) > 0 {
			have = "have: " + strings.Join(envs, ", ")
		}
		return nil, &Error{File: name, Msg: fmt.Sprintf("environment %q not found (%s)", envName, have), err: ErrUnknownEnv}
	}
	if !typeRE.MatchString(envName) {
		// The name ends up in run/ and log file names: keep it plain.
		return nil, &Error{File: name, Line: p.lines.line(envName), Msg: fmt.Sprintf("environment name %q must match %s", envName, typeRE)}
	}
	env := p.env(envName, m)
	if err := p.err(); err != nil {
		return nil, err
	}
	return env, nil
}

// table is one TOML table being read: its decoded map, its path for line
// numbers, and the subject its errors start with.
type table struct {
	p       *parser
	m       map[string]any
	path    []string
	subject string
}

func (t table) at(key ...string) []string {
	return append(append([]string(nil), t.path...), key...)
}

// line is the line of key, or of the table if key is not in the text.
func (t table) line(key string) int { return t.p.lines.line(t.at(key)...) }

func (t table) headerLine() int { return t.p.lines.line(t.path...) }

func (t table) errorf(line int, format string, args ...any) {
	t.p.add(line, "%s: %s", t.subject, fmt.Sprintf(format, args...))
}

// unknownKeys reports every key not in allowed.
func (t table) unknownKeys(allowed []string) {
	for _, k := range sortedKeys(t.m) {
		if slices.Contains(allowed, k) {
			continue
		}
		t.errorf(t.line(k), "unknown key %q%s", k, suggest(k, allowed))
	}
}

func (t table) wrongType(key, want string) {
	t.errorf(t.line(key), "%s must be %s, not %s", key, want, typeName(t.m[key]))
}

// str returns a string value; ok is false when absent or mistyped.
func (t table) str(key string) (v string, ok bool) {
	raw, present := t.m[key]
	if !present {
		return "", false
	}
	v, ok = raw.(string)
	if !ok {
		t.wrongType(key, "a string")
	}
	return v, ok
}

func (t table) boolean(key string) (v, ok bool) {
	raw, present := t.m[key]
	if !present {
		return false, false
	}
	v, ok = raw.(bool)
	if !ok {
		t.wrongType(key, "a boolean")
	}
	return v, ok
}

// port reads a port: an integer, a "N" string or, if allowInc, "N++".
// present reports whether the key exists; ok whether the value is usable.
func (t table) port(key string, allowInc bool) (n int, inc, present, ok bool) {
	raw, present := t.m[key]
	if !present {
		return 0, false, false, false
	}
	switch v := raw.(type) {
	case int64:
		if v < 1 || v > 65535 {
			t.errorf(t.line(key), "%s %d is not a port", key, v)
			return 0, false, true, false
		}
		return int(v), false, true, true
	case string:
		digits, inc := strings.CutSuffix(v, "++")
		n, err := strconv.Atoi(digits)
		if digits == "" || strings.Trim(digits, "0123456789") != "" || err != nil || n < 1 || n > 65535 {
			t.errorf(t.line(key), "%s %q is not a port", key, v)
			return 0, false, true, false
		}
		if inc && !allowInc {
			t.errorf(t.line(key), "%s %q: \"N++\" is only for port, clientPort and metricsPort of a server entry with clusterCount", key, v)
			return 0, false, true, false
		}
		return n, inc, true, true
	default:
		t.wrongType(key, `an integer or a string like "3150" or "3150++"`)
		return 0, false, true, false
	}
}

// host reads a host name or IP address.
func (t table) host(key string) (string, bool) {
	h, ok := t.str(key)
	if !ok {
		return "", false
	}
	switch {
	case h == "":
		t.errorf(t.line(key), "%s is empty", key)
	case strings.HasSuffix(h, "++"):
		t.errorf(t.line(key), "%s %q: \"N++\" is only for port, clientPort and metricsPort", key, h)
	case strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune("[]/\\@#?", r) }):
		t.errorf(t.line(key), "%s %q is not a host name or IP address", key, h)
	case strings.Count(h, ":") == 1:
		t.errorf(t.line(key), "%s %q must not include a port", key, h)
	default:
		return h, true
	}
	return "", false
}

func (p *parser) env(name string, m map[string]any) *Env {
	t := table{p: p, m: m, path: []string{name}, subject: name}
	env := &Env{Name: name, Base: DefaultBase}

	for _, k := range sortedKeys(m) {
		switch m[k].(type) {
		case []map[string]any, []any:
			continue // a server type, checked below
		case map[string]any:
			if !slices.Contains(envKeys, k) {
				hint := suggest(k, envKeys)
				if hint == "" {
					hint = fmt.Sprintf(" (servers of a type are an array of tables: [[%s.%s]])", name, k)
				}
				t.errorf(t.line(k), "unknown table %q%s", k, hint)
			}
		default:
			if !slices.Contains(envKeys, k) {
				t.errorf(t.line(k), "unknown key %q%s", k, suggest(k, envKeys))
			}
		}
	}

	if v, ok := t.str("binary"); ok {
		if v == "" {
			t.errorf(t.line("binary"), "binary is empty")
		}
		env.Binary = v
	} else if _, present := m["binary"]; !present {
		t.errorf(t.headerLine(), "missing binary")
	}
	if v, ok := t.str("base"); ok {
		if v == "" {
			t.errorf(t.line("base"), `base is empty (leave it out for ".")`)
		}
		env.Base = v
	}
	if v, ok := t.str("logFormat"); ok {
		switch v {
		case LogText, LogJSON:
			env.LogFormat = v
		default:
			t.errorf(t.line("logFormat"), "logFormat %q must be %q or %q", v, LogText, LogJSON)
		}
	}

	// Reserved tables.
	sub := func(key string) (table, bool) {
		raw, present := m[key]
		if !present {
			return table{}, false
		}
		mm, ok := raw.(map[string]any)
		if !ok {
			t.errorf(t.line(key), "%s must be a table ([%s.%s]), not %s", key, name, key, typeName(raw))
			return table{}, false
		}
		return table{p: p, m: mm, path: t.at(key), subject: key}, true
	}
	addrs := newAddrBook(p)
	ids := map[string]int{}
	if mt, ok := sub("master"); ok {
		env.Master = p.master(mt, addrs, ids)
	} else if _, present := m["master"]; !present {
		t.errorf(t.headerLine(), "missing [%s.master] table", name)
	}
	env.SSH = SSH{Port: DefaultSSHPort}
	if st, ok := sub("ssh"); ok {
		env.SSH = p.ssh(st)
	}
	if lt, ok := sub("lb"); ok {
		env.LB = p.lb(lt)
	}
	env.Rolling = Rolling{DrainTimeout: DefaultDrainTimeout, StartTimeout: DefaultStartTimeout}
	if rt, ok := sub("rolling"); ok {
		env.Rolling = p.rolling(rt)
	}

	// Server types: every remaining array, its entries in file order.
	type entry struct {
		t    table
		typ  string
		line int
	}
	var entries []entry
	for _, typ := range sortedKeys(m) {
		if slices.Contains(envKeys, typ) {
			continue
		}
		var list []any
		switch v := m[typ].(type) {
		case []map[string]any:
			for _, e := range v {
				list = append(list, e)
			}
		case []any:
			list = v
		default:
			continue // reported above as an unknown key
		}
		if !typeRE.MatchString(typ) {
			t.errorf(t.line(typ), "server type %q must match [A-Za-z][A-Za-z0-9_-]* (routes are type.handler.method)", typ)
			continue
		}
		for i, raw := range list {
			path := t.at(typ, elem(i))
			em, ok := raw.(map[string]any)
			if !ok {
				t.errorf(p.lines.line(path...), "%s must be an array of tables ([[%s.%s]]), but element %d is %s",
					typ, name, typ, i, typeName(raw))
				break
			}
			et := table{p: p, m: em, path: path, subject: typ}
			entries = append(entries, entry{t: et, typ: typ, line: et.headerLine()})
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return a.line - b.line })

	seq := map[string]int{} // next cluster-server-<type>-<seq>
	for _, e := range entries {
		for _, s := range p.server(e.t, e.typ, seq) {
			if prev, dup := ids[s.ID]; dup {
				e.t.errorf(s.idLine, "duplicate id %q (also on line %d)", s.ID, prev)
			} else {
				ids[s.ID] = s.idLine
			}
			addrs.add(e.t, s.ID, "port", s.Host, s.Port, s.portLine)
			if s.Frontend {
				addrs.add(e.t, s.ID, "clientPort", s.ClientHost, s.ClientPort, s.clientPortLine)
			}
			if s.MetricsPort != 0 {
				addrs.add(e.t, s.ID, "metricsPort", s.Host, s.MetricsPort, s.metricsPortLine)
			}
			env.Servers = append(env.Servers, s.Server)
		}
	}
	slices.SortFunc(env.Servers, func(a, b Server) int { return strings.Compare(a.ID, b.ID) })
	return env
}

func (p *parser) master(t table, addrs *addrBook, ids map[string]int) Master {
	t.unknownKeys(masterKeys)
	var m Master
	okID, okHost, okPort := false, false, false
	if _, present := t.m["id"]; !present {
		t.errorf(t.headerLine(), "missing id")
	} else if m.ID, okID = t.str("id"); okID && !idRE.MatchString(m.ID) {
		t.errorf(t.line("id"), "id %q must match [A-Za-z0-9][A-Za-z0-9._-]*", m.ID)
		okID = false
	}
	if _, present := t.m["host"]; !present {
		t.errorf(t.headerLine(), "missing host")
	} else {
		m.Host, okHost = t.host("host")
	}
	var present bool
	if m.Port, _, present, okPort = t.port("port", false); !present {
		t.errorf(t.headerLine(), "missing port")
	}
	adminHost, okAdminHost := t.host("adminHost")
	adminPort, _, adminPresent, okAdminPort := t.port("adminPort", false)
	if _, hostPresent := t.m["adminHost"]; hostPresent && !adminPresent {
		t.errorf(t.line("adminHost"), "adminHost is set but adminPort is not")
	}
	if okAdminHost {
		m.AdminHost = adminHost
	} else {
		m.AdminHost = m.Host
	}
	if okAdminPort {
		m.AdminPort = adminPort
	}
	if okID {
		ids[m.ID] = t.line("id")
	}
	if okHost && okPort {
		addrs.add(t, m.ID, "port", m.Host, m.Port, t.line("port"))
	}
	if _, hostPresent := t.m["adminHost"]; okAdminPort && ((hostPresent && okAdminHost) || (!hostPresent && okHost)) {
		addrs.add(t, m.ID, "adminPort", m.AdminHost, m.AdminPort, t.line("adminPort"))
	}
	return m
}

func (p *parser) ssh(t table) SSH {
	t.unknownKeys(sshKeys)
	s := SSH{Port: DefaultSSHPort}
	s.User, _ = t.str("user")
	if n, _, _, ok := t.port("port", false); ok {
		s.Port = n
	}
	s.IdentityFile, _ = t.str("identityFile")
	s.KnownHosts, _ = t.str("knownHosts")
	s.UploadBinary, _ = t.boolean("uploadBinary")
	return s
}

func (p *parser) lb(t table) LB {
	t.unknownKeys(lbKeys)
	var lb LB
	driverOK := true
	if v, ok := t.str("driver"); ok {
		switch v {
		case LBHAProxy, LBCommand:
			lb.Driver = v
		default:
			t.errorf(t.line("driver"), "driver %q must be %q or %q", v, LBHAProxy, LBCommand)
			driverOK = false
		}
	} else if _, present := t.m["driver"]; present {
		driverOK = false
	}
	lb.HAProxySocket, _ = t.str("haproxySocket")
	lb.HAProxyBackend, _ = t.str("haproxyBackend")
	lb.DrainCommand, _ = t.str("drainCommand")
	lb.EnableCommand, _ = t.str("enableCommand")
	lb.StatusCommand, _ = t.str("statusCommand")
	if !driverOK {
		return lb
	}

	if _, present := t.m["haproxySocket"]; present && lb.HAProxySocket != "" {
		if msg := checkSocket(lb.HAProxySocket); msg != "" {
			t.errorf(t.line("haproxySocket"), "haproxySocket %q %s", lb.HAProxySocket, msg)
		}
	}
	// Each driver's own keys are required with it and an error without it:
	// a key that silently does nothing is a mistake waiting to happen.
	fields := []struct {
		key, driver string
		val         string
		required    bool
	}{
		{"haproxySocket", LBHAProxy, lb.HAProxySocket, true},
		{"haproxyBackend", LBHAProxy, lb.HAProxyBackend, true},
		{"drainCommand", LBCommand, lb.DrainCommand, true},
		{"enableCommand", LBCommand, lb.EnableCommand, true},
		{"statusCommand", LBCommand, lb.StatusCommand, false},
	}
	for _, f := range fields {
		_, present := t.m[f.key]
		switch {
		case present && lb.Driver != f.driver:
			t.errorf(t.line(f.key), "%s is set but driver is not %q", f.key, f.driver)
		case lb.Driver == f.driver && f.required && f.val == "":
			if present {
				t.errorf(t.line(f.key), "%s is empty", f.key)
			} else {
				t.errorf(t.headerLine(), "driver %q needs %s", lb.Driver, f.key)
			}
		}
	}
	return lb
}

// checkSocket validates an HAProxy runtime API address.
func checkSocket(s string) string {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return "has an empty path"
		}
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return `must be "unix:PATH" or "HOST:PORT"`
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return `must be "unix:PATH" or "HOST:PORT"`
	}
	return ""
}

func (p *parser) rolling(t table) Rolling {
	t.unknownKeys(rollingKeys)
	r := Rolling{DrainTimeout: DefaultDrainTimeout, StartTimeout: DefaultStartTimeout}
	for _, f := range []struct {
		key string
		dst *time.Duration
	}{{"drainTimeout", &r.DrainTimeout}, {"startTimeout", &r.StartTimeout}} {
		v, ok := t.str(f.key)
		if !ok {
			continue // absent, or the wrong type (reported)
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.errorf(t.line(f.key), "%s %q is not a positive duration like \"30s\"", f.key, v)
			continue
		}
		*f.dst = d
	}
	return r
}

// server is a Server plus the lines its errors point at.
type server struct {
	Server
	idLine, portLine, clientPortLine, metricsPortLine int
}

// server validates one [[ENV.type]] entry and expands it.
func (p *parser) server(t table, typ string, seq map[string]int) []server {
	before := len(p.errs)
	t.unknownKeys(serverKeys)
	header := t.headerLine()

	id, hasID := t.str("id")
	if hasID && !idRE.MatchString(id) {
		t.errorf(t.line("id"), "id %q must match [A-Za-z0-9][A-Za-z0-9._-]*", id)
	}
	host, _ := t.host("host")
	if _, present := t.m["host"]; !present {
		t.errorf(header, "missing host")
	}
	port, portInc, present, _ := t.port("port", true)
	if !present {
		t.errorf(header, "missing port")
	}
	frontend, _ := t.boolean("frontend")
	autoRestart, _ := t.boolean("autoRestart")
	clientHost, _ := t.host("clientHost")
	clientPort, clientInc, clientPresent, _ := t.port("clientPort", true)
	metricsPort, metricsInc, metricsPresent, _ := t.port("metricsPort", true)
	_, clientHostPresent := t.m["clientHost"]
	if frontend {
		if !clientPresent {
			t.errorf(header, "frontend server needs clientPort")
		}
		if !clientHostPresent {
			clientHost = host
		}
	} else {
		if clientPresent {
			t.errorf(t.line("clientPort"), "clientPort is set but frontend is not true")
		}
		if clientHostPresent {
			t.errorf(t.line("clientHost"), "clientHost is set but frontend is not true")
		}
	}

	tlsCert, tlsKey := t.tlsFiles(frontend)

	group, ok := t.str("group")
	if ok && group != "a" && group != "b" {
		t.errorf(t.line("group"), "group %q must be \"a\" or \"b\"", group)
	}

	var args []string
	if raw, present := t.m["args"]; present {
		list, ok := raw.([]any)
		if !ok {
			t.wrongType("args", "an array of strings")
		}
		for _, a := range list {
			s, ok := a.(string)
			if !ok {
				t.errorf(t.line("args"), "args must be an array of strings, but has %s", typeName(a))
				break
			}
			args = append(args, s)
		}
	}
	var envVars map[string]string
	if raw, present := t.m["env"]; present {
		m, ok := raw.(map[string]any)
		if !ok {
			t.wrongType("env", "a table of strings")
		}
		for _, k := range sortedKeys(m) {
			s, ok := m[k].(string)
			switch {
			case !ok:
				t.errorf(p.lines.line(t.at("env", k)...), "env.%s must be a string, not %s", k, typeName(m[k]))
			case k == "" || strings.ContainsAny(k, "=\x00"):
				t.errorf(p.lines.line(t.at("env", k)...), "env key %q is not a variable name", k)
			default:
				if envVars == nil {
					envVars = map[string]string{}
				}
				envVars[k] = s
			}
		}
	}

	count, hasCount := 1, false
	if raw, present := t.m["clusterCount"]; present {
		n, ok := raw.(int64)
		switch {
		case !ok:
			t.wrongType("clusterCount", "an integer")
		case n < 1:
			t.errorf(t.line("clusterCount"), "clusterCount %d must be at least 1", n)
		case n > 65535:
			t.errorf(t.line("clusterCount"), "clusterCount %d is more than there are ports", n)
		default:
			count, hasCount = int(n), true
		}
	}
	if !hasCount {
		if _, present := t.m["clusterCount"]; !present {
			if _, present := t.m["id"]; !present {
				t.errorf(header, "missing id (required without clusterCount)")
			}
			for _, f := range []struct {
				key string
				inc bool
			}{{"port", portInc}, {"clientPort", clientInc}, {"metricsPort", metricsInc}} {
				if f.inc {
					t.errorf(t.line(f.key), "%s %q needs clusterCount", f.key, t.m[f.key])
				}
			}
		}
	}
	if len(p.errs) > before {
		return nil
	}

	// Copies of one entry must not share an address, and N++ must stay in range.
	for _, f := range []struct {
		key string
		n   int
		inc bool
		use bool
	}{{"port", port, portInc, true}, {"clientPort", clientPort, clientInc, frontend}, {"metricsPort", metricsPort, metricsInc, metricsPresent}} {
		if !f.use {
			continue
		}
		if !f.inc && count > 1 {
			t.errorf(t.line(f.key), "%s %d without \"++\": all %d copies of clusterCount would use it", f.key, f.n, count)
		} else if f.n+count-1 > 65535 {
			t.errorf(t.line(f.key), "%s %q with clusterCount %d goes past 65535", f.key, t.m[f.key], count)
		}
	}
	if len(p.errs) > before {
		return nil
	}

	out := make([]server, 0, count)
	for i := range count {
		s := Server{
			Type:        typ,
			Host:        host,
			Port:        port,
			Frontend:    frontend,
			AutoRestart: autoRestart,
			Group:       group,
			Args:        slices.Clone(args),
			TLSCert:     tlsCert,
			TLSKey:      tlsKey,
			Line:        header,
		}
		if frontend {
			s.ClientHost = clientHost
			s.ClientPort = clientPort
			if clientInc {
				s.ClientPort += i
			}
		}
		if portInc {
			s.Port += i
		}
		if metricsPresent {
			s.MetricsPort = metricsPort
			if metricsInc {
				s.MetricsPort += i
			}
		}
		if envVars != nil {
			s.Env = make(map[string]string, len(envVars))
			for k, v := range envVars {
				s.Env[k] = v
			}
		}
		switch {
		case !hasCount:
			s.ID = id
		case hasID:
			s.ID = id + "-" + strconv.Itoa(i)
		default:
			s.ID = "cluster-server-" + typ + "-" + strconv.Itoa(seq[typ])
			seq[typ]++
		}
		idLine := header
		if hasID {
			idLine = t.line("id")
		}
		out = append(out, server{Server: s, idLine: idLine, portLine: t.line("port"), clientPortLine: t.line("clientPort"),
			metricsPortLine: t.line("metricsPort")})
	}
	return out
}

// tlsFiles reads tlsCert and tlsKey: both or neither, on frontends only.
func (t table) tlsFiles(frontend bool) (cert, key string) {
	cert, certOK := t.str("tlsCert")
	key, keyOK := t.str("tlsKey")
	_, certPresent := t.m["tlsCert"]
	_, keyPresent := t.m["tlsKey"]
	for _, f := range []struct {
		key, val string
		ok       bool
	}{{"tlsCert", cert, certOK}, {"tlsKey", key, keyOK}} {
		if f.ok && f.val == "" {
			t.errorf(t.line(f.key), "%s is empty", f.key)
		}
	}
	switch {
	case (certPresent || keyPresent) && !frontend:
		k := "tlsCert"
		if !certPresent {
			k = "tlsKey"
		}
		t.errorf(t.line(k), "%s is set but frontend is not true (TLS is for the client port)", k)
	case certPresent && !keyPresent:
		t.errorf(t.line("tlsCert"), "tlsCert is set but tlsKey is not")
	case keyPresent && !certPresent:
		t.errorf(t.line("tlsKey"), "tlsKey is set but tlsCert is not")
	}
	return cert, key
}

// addrBook finds host:port pairs used twice.
type addrBook struct {
	p    *parser
	seen map[string]addrUse
}

type addrUse struct {
	id, key string
	line    int
}

func newAddrBook(p *parser) *addrBook { return &addrBook{p: p, seen: map[string]addrUse{}} }

func (b *addrBook) add(t table, id, key, host string, port, line int) {
	addr := net.JoinHostPort(strings.ToLower(host), strconv.Itoa(port))
	if prev, dup := b.seen[addr]; dup {
		t.errorf(line, "%s %s %s is already used by %s %s (line %d)", id, key, addr, prev.id, prev.key, prev.line)
		return
	}
	b.seen[addr] = addrUse{id: id, key: key, line: line}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// typeName names the TOML type of a decoded value.
func typeName(v any) string {
	switch v := v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		for _, e := range v {
			if _, ok := e.(map[string]any); !ok {
				return "an array"
			}
		}
		if len(v) == 0 {
			return "an array"
		}
		return "an array of tables"
	default:
		return "a date-time"
	}
}

// suggest returns ` (did you mean "x"?)` for a near miss of a known key.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if strings.EqualFold(c, k) {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
		if d := editDistance(strings.ToLower(k), strings.ToLower(c)); d < bestD && len(c) > 3 {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
