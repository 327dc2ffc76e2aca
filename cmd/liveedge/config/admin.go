package config

import (
	"net"
	"strings"
)

// EnvAdminSecret overrides admin.secret (see ApplyEnv).
const EnvAdminSecret = "LIVEEDGE_ADMIN_SECRET"

// DefaultMetricsMaxStreams is the default of admin.metrics_max_streams.
const DefaultMetricsMaxStreams = 100

// AdminConfig configures the admin listener: the JSON API, the
// ZLMediaKit-compatible API subset and the Prometheus metrics.
type AdminConfig struct {
	// Listen is the TCP address of the admin listener ("" disables it).
	Listen string `yaml:"listen" json:"listen"`
	// Secret is required from every client ("Authorization: Bearer" or a
	// secret query parameter). It may be empty only when Listen is a
	// loopback address, which then needs no secret.
	Secret string `yaml:"secret" json:"secret"`
	// StateFile, if set, is where proxies added at run time are kept, so
	// that they are restored on the next start.
	StateFile string `yaml:"state_file" json:"state_file"`
	// MetricsMaxStreams is how many streams get their own stream label in
	// the metrics (those with the most viewers); the others are summed
	// under stream="_other".
	MetricsMaxStreams int `yaml:"metrics_max_streams" json:"metrics_max_streams"`
	// Pprof serves Go's runtime profiles (heap, CPU, goroutines) under
	// /debug/pprof/, behind the same secret as the rest.
	Pprof bool `yaml:"pprof" json:"pprof"`
}

func defaultAdmin() AdminConfig {
	return AdminConfig{Listen: "127.0.0.1:9997", MetricsMaxStreams: DefaultMetricsMaxStreams}
}

// Enabled reports whether the admin listener has an address.
func (a AdminConfig) Enabled() bool { return a.Listen != "" }

// Loopback reports whether Listen binds a loopback address only
// ("localhost", 127.0.0.0/8 or ::1).
func (a AdminConfig) Loopback() bool {
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return false
	}
	return IsLoopbackHost(host)
}

// IsLoopbackHost reports whether host (a listen address's host part) names
// a loopback address only.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateAdmin(v *validator) {
	a := &c.Admin
	if a.MetricsMaxStreams < 1 {
		v.add("admin.metrics_max_streams", "must be >= 1 (got %d)", a.MetricsMaxStreams)
	}
	if a.Enabled() && a.Secret == "" {
		if _, _, err := splitListen(a.Listen); err == nil && !a.Loopback() {
			v.add("admin.secret", "required when admin.listen is not a loopback address (%q)", a.Listen)
		}
	}
	if strings.ContainsFunc(a.StateFile, func(r rune) bool { return r == 0 }) {
		v.add("admin.state_file", "contains a NUL byte")
	}
}
