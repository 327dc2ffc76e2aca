package config

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Duration is a time.Duration written in YAML as a Go duration string such
// as "2s", "500ms", "1m" or "1h30m" (see [time.ParseDuration]). The bare
// number 0 is accepted too; any other bare number is an error because its
// unit would be a guess. It marshals back to a string ("1m", "2s").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.String without the redundant zero
// units: "1m" rather than "1m0s", "1h" rather than "1h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// ParseDuration parses a duration string; it is time.ParseDuration with a
// friendlier error and a hint when the unit is missing.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	v, err := time.ParseDuration(t)
	if err != nil {
		if _, nerr := strconv.ParseFloat(t, 64); nerr == nil && t != "0" {
			return 0, fmt.Errorf("invalid duration %q: missing unit (for example \"2s\" or \"500ms\")", s)
		}
		return 0, fmt.Errorf("invalid duration %q (want for example \"2s\", \"500ms\" or \"1m\")", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML implements yaml.NodeUnmarshaler; errors carry the position
// of the value.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	s, err := scalarText(node, "duration")
	if err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return nodeError(node, err.Error())
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.InterfaceMarshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText implements encoding.TextMarshaler (used by encoding/json).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ByteSize is a number of bytes. In YAML it is a non-negative integer or a
// string with a unit: "16MiB", "512KiB", "1.5GiB" (binary, powers of 1024)
// or "1MB", "500kB" (decimal, powers of 1000), or "100B". Units are
// case-insensitive and may be separated from the number by spaces. It
// marshals as a string in the largest unit that represents it exactly
// ("16MiB"), or as a plain integer.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

var byteUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// ParseByteSize parses a size such as "16MiB", "512KiB", "1MB" or "1024".
// The result must be a whole, non-negative number of bytes that fits in an
// int64.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := byteUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid byte size %q (want a number of bytes or a size like \"16MiB\", \"512KiB\" or \"1MB\")", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid byte size %q: bad number %q", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid byte size %q: not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("invalid byte size %q: too large", s)
	}
	return ByteSize(r.Num().Int64()), nil
}

// String formats b in the largest binary unit (KiB, MiB, GiB, TiB) or, failing
// that, decimal unit (kB, MB, GB, TB) that represents it exactly, else in
// bytes with a "B" suffix. 0 is "0".
func (b ByteSize) String() string {
	if b == 0 {
		return "0"
	}
	for _, u := range []struct {
		n    int64
		name string
	}{
		{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"},
		{1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "kB"},
	} {
		if int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// UnmarshalYAML implements yaml.NodeUnmarshaler; errors carry the position
// of the value.
func (b *ByteSize) UnmarshalYAML(node ast.Node) error {
	s, err := scalarText(node, "byte size")
	if err != nil {
		return err
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return nodeError(node, err.Error())
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.InterfaceMarshaler: a string with a unit when
// one fits exactly, else an integer.
func (b ByteSize) MarshalYAML() (any, error) {
	s := b.String()
	if strings.HasSuffix(s, "B") && strings.TrimRight(s[:len(s)-1], "0123456789") == "" {
		return int64(b), nil
	}
	return s, nil
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(t []byte) error {
	v, err := ParseByteSize(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Bitrate is a rate in bits per second. In YAML it is a non-negative
// number of bit/s or a string with a decimal unit: "20M" or "20Mbps"
// (20,000,000), "500k" or "500kbit/s", "1.5G". Units are k, M, G (powers
// of 1000; "K" is "k"), optionally followed by "bps", "bit/s" or "b/s",
// and may be separated from the number by spaces. It marshals as a string
// in the largest unit that represents it exactly ("20M").
type Bitrate int64

var bitrateUnits = map[string]int64{"": 1, "k": 1e3, "m": 1e6, "g": 1e9}

// ParseBitrate parses a bitrate such as "20M", "500kbps" or "1000000".
// The result must be a whole, non-negative number of bit/s that fits in an
// int64.
func ParseBitrate(s string) (Bitrate, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	for _, suffix := range []string{"bps", "bit/s", "b/s"} {
		if u, ok := strings.CutSuffix(unit, suffix); ok {
			unit = u
			break
		}
	}
	mult, ok := bitrateUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid bitrate %q (want bits per second or a rate like \"20M\", \"500k\" or \"2.5Mbps\")", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid bitrate %q: bad number %q", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid bitrate %q: not a whole number of bit/s", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("invalid bitrate %q: too large", s)
	}
	return Bitrate(r.Num().Int64()), nil
}

// String formats b in the largest unit (G, M, k) that represents it
// exactly, else as a plain number. 0 is "0".
func (b Bitrate) String() string {
	for _, u := range []struct {
		n    int64
		name string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalYAML implements yaml.NodeUnmarshaler; errors carry the position
// and the key of the value.
func (b *Bitrate) UnmarshalYAML(node ast.Node) error {
	s, err := scalarText(node, "bitrate")
	if err != nil {
		return err
	}
	v, err := ParseBitrate(s)
	if err != nil {
		msg := err.Error()
		if p := strings.TrimPrefix(node.GetPath(), "$."); p != "" && p != "$" {
			msg = p + ": " + msg
		}
		return nodeError(node, msg)
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.InterfaceMarshaler: a string with a unit when
// one fits exactly, else an integer.
func (b Bitrate) MarshalYAML() (any, error) {
	if s := b.String(); strings.TrimRight(s, "0123456789") != "" {
		return s, nil
	}
	return int64(b), nil
}

// MarshalText implements encoding.TextMarshaler.
func (b Bitrate) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Bitrate) UnmarshalText(t []byte) error {
	v, err := ParseBitrate(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// scalarText returns the text of a scalar node (a string or a number),
// or a positioned error naming what was expected.
func scalarText(node ast.Node, what string) (string, error) {
	var v any
	if err := yaml.NodeToValue(node, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			break
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", nodeError(node, fmt.Sprintf("invalid %s: want a scalar, got %s", what, node.Type()))
}

// nodeError returns a goccy/go-yaml error positioned at node, so that Parse
// reports its line and column.
func nodeError(node ast.Node, msg string) error {
	return &yaml.SyntaxError{Message: msg, Token: node.GetToken()}
}
