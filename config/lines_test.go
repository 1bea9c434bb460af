package config

import (
	"testing"

	"github.com/BurntSushi/toml"
)

func TestLineIndex(t *testing.T) {
	const file = `# comment [[not.a.header]]
[dev]                       # 2
binary = """
[[dev.fake]]
port = 1
"""                         # 3..6: a multi-line string is not a header
base = '''x'''''            # 7: up to two quotes end the content
"quoted.key" = 1            # 8
dotted . key = "a#b"        # 9

[[dev.chat]]                # 11
id = "c0"                   # 12
args = [
  "a", # ]
  "b",
]                           # 13..16
tags = { A = "1", B = "}" } # 17

[ dev . chat . env ]        # 19: a sub-table of the last chat
C = '''
multi'''                    # 20..21

[[dev.chat]]                # 23
id = 'c1'                   # 24
list = [
  { id = "x" },             # 26
  {
    id = "y",               # 28 (TOML 1.1 multi-line inline table)
  },
]
when = 1979-05-27 07:32:00Z # 31

[[ "dev" . chat ]]          # 33
"" = 1                      # 34
`
	if _, err := toml.Decode(file, new(map[string]any)); err != nil {
		t.Fatalf("test file is not valid TOML: %v", err)
	}
	x := indexLines([]byte(file))
	tests := []struct {
		path []string
		want int
	}{
		{[]string{"dev"}, 2},
		{[]string{"dev", "binary"}, 3},
		{[]string{"dev", "fake"}, 0},
		{[]string{"dev", "base"}, 7},
		{[]string{"dev", "quoted.key"}, 8},
		{[]string{"dev", "dotted", "key"}, 9},
		{[]string{"dev", "dotted"}, 9},
		{[]string{"dev", "chat"}, 11},
		{[]string{"dev", "chat", elem(0)}, 11},
		{[]string{"dev", "chat", elem(0), "id"}, 12},
		{[]string{"dev", "chat", elem(0), "args"}, 13},
		{[]string{"dev", "chat", elem(0), "args", elem(1)}, 15},
		{[]string{"dev", "chat", elem(0), "tags", "B"}, 17},
		{[]string{"dev", "chat", elem(0), "env", "C"}, 20},
		{[]string{"dev", "chat", elem(1)}, 23},
		{[]string{"dev", "chat", elem(1), "id"}, 24},
		{[]string{"dev", "chat", elem(1), "list", elem(0), "id"}, 26},
		{[]string{"dev", "chat", elem(1), "list", elem(1)}, 27},
		{[]string{"dev", "chat", elem(1), "list", elem(1), "id"}, 28},
		{[]string{"dev", "chat", elem(1), "when"}, 31},
		{[]string{"dev", "chat", elem(1), "missing"}, 23},
		{[]string{"dev", "chat", elem(2)}, 33},
		{[]string{"dev", "chat", elem(2), ""}, 34},
		{[]string{"prod"}, 0},
	}
	for _, tc := range tests {
		var got int
		if tc.want == 0 {
			if x.lines[joinPath(tc.path)] != (lineEntry{}) {
				got = -1
			}
		} else {
			got = x.line(tc.path...)
		}
		if got != tc.want {
			t.Errorf("line(%q) = %d, want %d", tc.path, got, tc.want)
		}
	}
}

// TestHeaderAfterSubtable: [dev] after [dev.master] still gives dev its own line.
func TestHeaderAfterSubtable(t *testing.T) {
	x := indexLines([]byte("[dev.master]\nid = 1\n\n[dev]\nbinary = 1\n"))
	if got := x.line("dev"); got != 4 {
		t.Errorf("line(dev) = %d, want 4", got)
	}
	if got := x.line("dev", "master", "id"); got != 2 {
		t.Errorf("line(dev.master.id) = %d, want 2", got)
	}
}
