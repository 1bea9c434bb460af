package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestServerFromFields(t *testing.T) {
	s, err := ServerFromFields(map[string]string{"id": "connector-3", "type": "connector", "host": "127.0.0.1", "port": "3152",
		"clientPort": "3052", "frontend": "true", "group": "a", "autoRestart": "true", "args": "--web=x,-v", "env.GOGC": "400"})
	if err != nil {
		t.Fatal(err)
	}
	want := Server{ID: "connector-3", Type: "connector", Host: "127.0.0.1", Port: 3152, ClientHost: "127.0.0.1", ClientPort: 3052,
		Frontend: true, AutoRestart: true, Group: "a", Args: []string{"--web=x", "-v"}, Env: map[string]string{"GOGC": "400"}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
	for _, c := range []struct {
		fields map[string]string
		want   string
	}{
		{map[string]string{"id": "x", "host": "h", "port": "1"}, "type is required"},
		{map[string]string{"type": "master", "id": "x", "host": "h", "port": "1"}, `type "master" is not a server type`},
		{map[string]string{"type": "chat", "id": "x", "host": "h", "port": "30x0"}, `port "30x0" is not a port`},
		{map[string]string{"type": "chat", "id": "x", "host": "h", "port": "1", "prot": "2"}, `prot: not a server key (did you mean "port"?)`},
		{map[string]string{"type": "connector", "id": "x", "host": "h", "port": "1", "frontend": "true"}, "clientPort"},
		{map[string]string{"type": "chat", "id": "x", "host": "h", "port": "1", "clusterCount": "2"}, "add adds one server"},
		{map[string]string{"type": "chat", "id": "x", "host": "h", "port": "1", "frontend": "yes"}, "want true or false"},
		{map[string]string{"type": "chat", "id": "x", "host": "h", "port": "1", "env.A-B": "1"}, "not an environment variable name"},
		{map[string]string{"type": "chat", "id": "bad id", "host": "h", "port": "1"}, "id"},
	} {
		_, err := ServerFromFields(c.fields)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.fields, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "add:") {
			t.Errorf("%v: %q names the made-up document", c.fields, err)
		}
	}
}
