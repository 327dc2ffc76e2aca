package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// ParseError is a YAML syntax or decoding error, such as an unknown key or
// a value of the wrong type. Its text is "line L, column C: message"; use
// yaml.FormatError(err, colored, true) on the wrapped error for a version
// that quotes the offending source lines.
type ParseError struct {
	Line, Column int    // 1-based; 0 if unknown
	Msg          string // e.g. `unknown field "foo"`
	Err          error  // the goccy/go-yaml error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return e.Msg
}

func (e *ParseError) Unwrap() error { return e.Err }

// Load reads and parses the configuration file at path; see Parse. Errors
// are prefixed with the path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a YAML configuration document over Default():
//
//   - every key the document omits (or sets to null) keeps its default,
//     at any depth: a document that only sets rtmp.listen keeps every other
//     default;
//   - a streams key replaces the default stream list entirely (an empty or
//     null streams key leaves no entries), and each entry's omitted
//     stall_timeout, keyframe_timeout, idle_close, start_timeout, failback, sign_ttl and
//     probe_interval get the per-entry defaults (2s, 10s,
//     hub.start_timeout, true, 1h, 5s); without a
//     streams key the default live/demo entry is kept, with the file's
//     hub.start_timeout;
//   - maps (auth.secrets, auth.publish_secrets, auth.apps) replace the default maps;
//   - decoding is strict: an unknown key, a duplicate key or a value of the
//     wrong type is a *ParseError naming the line, column and key;
//   - an empty document (or one holding only comments) is Default(); more
//     than one YAML document is an error.
//
// Parse neither reads the environment (see ApplyEnv) nor validates (see
// Validate).
func Parse(data []byte) (c *Config, err error) {
	// The YAML library panics on some malformed input (a bare "!" tag on
	// a sequence item, found by FuzzParse): a bad file is an error, never
	// a crash, also when it comes through a reload.
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, &ParseError{Msg: fmt.Sprintf("malformed YAML (the parser failed: %v)", r)}
		}
	}()
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, parseError(err)
	}
	var body ast.Node
	for _, doc := range file.Docs {
		if doc == nil || isNull(doc.Body) {
			continue
		}
		if body != nil {
			return nil, parseError(nodeError(doc.Body, "more than one YAML document"))
		}
		body = doc.Body
	}
	c = Default()
	if body == nil {
		return c, nil
	}
	if err := yaml.NodeToValue(body, c, yaml.Strict()); err != nil {
		return nil, parseError(err)
	}

	// Which keys were written? A generic decode keeps nulls as present keys
	// and resolves anchors and merge keys like the strict decode above.
	var present map[string]any
	if err := yaml.NodeToValue(body, &present); err != nil {
		return nil, parseError(err)
	}
	rawStreams, hasStreams := present["streams"]
	if !hasStreams {
		c.Streams = c.defaultStreams()
		return c, nil
	}
	if c.Streams == nil || rawStreams == nil {
		c.Streams = []Stream{}
	}
	entries, _ := rawStreams.([]any)
	for i := range c.Streams {
		var keys map[string]any
		if i < len(entries) {
			keys, _ = entries[i].(map[string]any)
		}
		s := &c.Streams[i]
		if keys["stall_timeout"] == nil {
			s.StallTimeout = DefaultStallTimeout
		}
		if keys["keyframe_timeout"] == nil {
			s.KeyframeTimeout = DefaultKeyframeTimeout
		}
		if keys["idle_close"] == nil {
			s.IdleClose = DefaultIdleClose
		}
		if keys["start_timeout"] == nil {
			s.StartTimeout = c.Hub.StartTimeout
		}
		if keys["failback"] == nil {
			s.Failback = DefaultFailback
		}
		if keys["sign_ttl"] == nil {
			s.SignTTL = DefaultSignTTL
		}
		if keys["probe_interval"] == nil {
			s.ProbeInterval = DefaultProbeInterval
		}
	}
	return c, nil
}

// isNull reports whether a document body is empty: absent, null or only
// comments.
func isNull(n ast.Node) bool {
	return n == nil || n.Type() == ast.NullType || n.Type() == ast.CommentType
}

// parseError converts a goccy/go-yaml error into a *ParseError.
func parseError(err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		pe := &ParseError{Msg: friendlyMessage(ye), Err: err}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			pe.Line, pe.Column = tk.Position.Line, tk.Position.Column
		}
		return pe
	}
	return &ParseError{Msg: err.Error(), Err: err}
}

// friendlyMessage rewrites type errors, which otherwise name Go types and
// struct fields, in terms of the YAML.
func friendlyMessage(ye yaml.Error) string {
	var te *yaml.TypeError
	if errors.As(ye, &te) && te.DstType != nil {
		got := "value"
		if tk := te.Token; tk != nil {
			got = fmt.Sprintf("%q", tk.Value)
		}
		return fmt.Sprintf("cannot use %s as %s", got, kindName(te.DstType))
	}
	return ye.GetMessage()
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}
