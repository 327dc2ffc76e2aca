package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/goccy/go-yaml"
)

// fuzzConfigSeeds are real configurations: the shipped examples, the
// marshaled defaults and the small documents of the parse tests.
func fuzzConfigSeeds(t testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "packaging", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configurations: %v", err)
	}
	var seeds [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	def, err := yaml.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, def)
	for _, s := range []string{
		"", "# nothing\n", "~\n", "---\n", "{}\n",
		"rtmp: {listen: \":1936\"}\n",
		"rtmp:\r\n  listen: \":1936\"\r\nwebrtc:\r\n  udp_port: 9000\r\n",
		"a: &x {listen: \":1\"}\nrtmp: *x\n",
		"streams:\n  - match: cam/*\n    mode: on_demand\n    origins: [\"rtsp://cam/$stream\"]\n",
		"streams: ~\n", "streams: []\n", "---\na: 1\n---\nb: 2\n", "rtmp: [1, 2]\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzParse: Parse never panics on a file, Validate never panics on what
// parses, and a configuration that parses and validates survives a
// marshal, parse and validate round trip unchanged (as marshaled).
func FuzzParse(f *testing.F) {
	for _, s := range fuzzConfigSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("a config with an error")
			}
			return
		}
		if c.Validate() != nil {
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal of a valid config: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("the marshaled config does not parse: %v\n%s", err, out)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("the marshaled config does not validate: %v\n%s", err, out)
		}
		// Compared as marshaled: a nil and an empty list mean the same.
		out2, err := yaml.Marshal(again)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip changes the config (%v):\n%s\n---\n%s", err, out, out2)
		}
	})
}
