package config

import (
	"strings"
	"testing"
)

func TestAdminDefaultsAndParse(t *testing.T) {
	d := Default()
	if d.Admin.Listen != "127.0.0.1:9997" || d.Admin.Secret != "" || d.Admin.StateFile != "" ||
		d.Admin.MetricsMaxStreams != 100 || !d.Admin.Enabled() || !d.Admin.Loopback() {
		t.Fatalf("default admin = %+v", d.Admin)
	}
	c := mustParse(t, "admin: {listen: \"0.0.0.0:9997\", secret: s, state_file: /var/lib/liveedge/state.json, metrics_max_streams: 5}\n")
	want := AdminConfig{Listen: "0.0.0.0:9997", Secret: "s", StateFile: "/var/lib/liveedge/state.json", MetricsMaxStreams: 5}
	if c.Admin != want {
		t.Fatalf("admin = %+v, want %+v", c.Admin, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Keys the file omits keep their defaults.
	c = mustParse(t, "admin: {listen: \"127.0.0.1:1\"}\n")
	if c.Admin.MetricsMaxStreams != 100 {
		t.Fatalf("metrics_max_streams = %d, want the default", c.Admin.MetricsMaxStreams)
	}
	if _, err := Parse([]byte("admin: {secrett: x}\n")); err == nil || !strings.Contains(err.Error(), "secrett") {
		t.Fatalf("unknown admin key: %v", err)
	}
}

func TestAdminValidate(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		secret string
		max    int
		want   string // "" = valid
	}{
		{"loopback v4 no secret", "127.0.0.1:9997", "", 100, ""},
		{"loopback v6 no secret", "[::1]:9997", "", 100, ""},
		{"localhost no secret", "localhost:9997", "", 100, ""},
		{"disabled", "", "", 100, ""},
		{"wildcard no secret", ":9997", "", 100, `admin.secret: required when admin.listen is not a loopback address`},
		{"any v4 no secret", "0.0.0.0:9997", "", 100, `admin.secret: required when admin.listen is not a loopback address`},
		{"public no secret", "192.0.2.1:9997", "", 100, `admin.secret: required`},
		{"public with secret", "192.0.2.1:9997", "s", 100, ""},
		{"max streams zero", "127.0.0.1:9997", "", 0, "admin.metrics_max_streams: must be >= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Admin.Listen, c.Admin.Secret, c.Admin.MetricsMaxStreams = tt.listen, tt.secret, tt.max
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAdminSecretFromEnvAndRedacted(t *testing.T) {
	c := Default()
	c.Admin.Listen = ":9997"
	c.ApplyEnv(func(k string) string {
		if k == EnvAdminSecret {
			return "from-env"
		}
		return ""
	})
	if c.Admin.Secret != "from-env" {
		t.Fatalf("admin.secret = %q, want it from %s", c.Admin.Secret, EnvAdminSecret)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if r := c.Redacted(); r.Admin.Secret != "REDACTED" || c.Admin.Secret != "from-env" {
		t.Fatalf("Redacted admin.secret = %q (original %q)", r.Admin.Secret, c.Admin.Secret)
	}
}
