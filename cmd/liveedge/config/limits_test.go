package config

import (
	"strings"
	"testing"
)

// TestBitrate: the units and suffixes a bitrate takes, the round trip of
// its string form, and errors that name the field.
func TestBitrate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Bitrate
		err  string
	}{
		{"20M", 20_000_000, ""},
		{"20Mbps", 20_000_000, ""},
		{"500 kbit/s", 500_000, ""},
		{"500K", 500_000, ""},
		{"2.5M", 2_500_000, ""},
		{"1G", 1_000_000_000, ""},
		{"1000000", 1_000_000, ""},
		{"800b/s", 800, ""},
		{"0", 0, ""},
		{"-1M", 0, "invalid bitrate"},
		{"20 megs", 0, "invalid bitrate"},
		{"M", 0, "invalid bitrate"},
		{"1.0001k", 0, "not a whole number"},
		{"20MiB", 0, "invalid bitrate"},
	} {
		got, err := ParseBitrate(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("ParseBitrate(%q) = %v, %v; want %d", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseBitrate(%q) error %v, want %q", c.in, err, c.err)
		}
		if err == nil {
			if back, err := ParseBitrate(got.String()); err != nil || back != got {
				t.Errorf("%q: String %q parses as %v, %v", c.in, got.String(), back, err)
			}
		}
	}
	cfg, err := Parse([]byte("limits:\n  max_bitrate_per_ip: 20M\n"))
	if err != nil || cfg.Limits.MaxBitratePerIP != 20_000_000 {
		t.Fatalf("max_bitrate_per_ip: 20M: %v, %v", cfg, err)
	}
	_, err = Parse([]byte("limits:\n  max_bitrate_per_ip: 20 megs\n"))
	if err == nil || !strings.Contains(err.Error(), "limits.max_bitrate_per_ip") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad bitrate: %v, want an error naming limits.max_bitrate_per_ip at line 2", err)
	}
	cfg = Default()
	cfg.Limits.MaxBitratePerIP = -5
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "limits.max_bitrate_per_ip: must be >= 0") {
		t.Fatalf("negative cap: %v", err)
	}
}
