package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// envKeyRE is what an env.NAME field's NAME must look like.
var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ServerFromFields reads one server given as key=value fields, as
// `master add` takes them: the keys of a server entry (type names its
// table; clusterCount is not allowed, it adds one server), args as a
// comma-separated list, env.NAME=VALUE for each environment variable. It
// checks them as servers.toml would; errors name the field, not a line.
func ServerFromFields(fields map[string]string) (Server, error) {
	typ := fields["type"]
	if typ == "" {
		return Server{}, errors.New("type is required (type=chat)")
	}
	if !typeRE.MatchString(typ) || slices.Contains(envKeys, typ) {
		return Server{}, fmt.Errorf("type %q is not a server type", typ)
	}
	var b strings.Builder
	// A minimal environment around the one entry; the master's address
	// is in a documentation range so that it clashes with nothing real.
	b.WriteString("[add]\nbinary = \"x\"\n[add.master]\nid = \"master-of-add\"\nhost = \"192.0.2.1\"\nport = 1\n")
	fmt.Fprintf(&b, "[[add.%s]]\n", typ)
	env := map[string]string{}
	for _, k := range sortedKeys(fields) {
		v := fields[k]
		switch {
		case k == "type":
		case k == "clusterCount":
			return Server{}, errors.New("clusterCount: add adds one server; give each its id")
		case strings.HasPrefix(k, "env."):
			name := strings.TrimPrefix(k, "env.")
			if !envKeyRE.MatchString(name) {
				return Server{}, fmt.Errorf("%s: %q is not an environment variable name", k, name)
			}
			env[name] = v
		case k == "args":
			var parts []string
			for _, a := range strings.Split(v, ",") {
				parts = append(parts, strconv.Quote(a))
			}
			fmt.Fprintf(&b, "args = [%s]\n", strings.Join(parts, ", "))
		case k == "port" || k == "clientPort" || k == "metricsPort":
			if _, err := strconv.Atoi(v); err == nil {
				fmt.Fprintf(&b, "%s = %s\n", k, v)
			} else {
				fmt.Fprintf(&b, "%s = %s\n", k, strconv.Quote(v))
			}
		case k == "frontend" || k == "autoRestart":
			if v != "true" && v != "false" {
				return Server{}, fmt.Errorf("%s=%q: want true or false", k, v)
			}
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		case slices.Contains(serverKeys, k) && k != "env":
			fmt.Fprintf(&b, "%s = %s\n", k, strconv.Quote(v))
		default:
			return Server{}, fmt.Errorf("%s: not a server key%s (keys: %s, env.NAME)", k, suggest(k, serverKeys), strings.Join(serverKeys, ", "))
		}
	}
	if len(env) > 0 {
		var parts []string
		for _, k := range sortedKeys(env) {
			parts = append(parts, fmt.Sprintf("%s = %s", k, strconv.Quote(env[k])))
		}
		fmt.Fprintf(&b, "env = { %s }\n", strings.Join(parts, ", "))
	}
	e, err := Parse("add", []byte(b.String()), "add")
	if err != nil {
		return Server{}, fieldErrors(err)
	}
	if len(e.Servers) != 1 {
		return Server{}, fmt.Errorf("want one server, got %d", len(e.Servers))
	}
	s := e.Servers[0]
	s.Line = 0
	return s, nil
}

// fieldErrors drops the file and line of errors about a made-up document.
func fieldErrors(err error) error {
	var msgs []string
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		var ce *Error
		if errors.As(e, &ce) {
			msgs = append(msgs, ce.Msg)
		} else {
			msgs = append(msgs, e.Error())
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}
