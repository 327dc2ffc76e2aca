package config

import (
	"strings"
	"unicode"
)

// FLVConfig configures HTTP-FLV and WS-FLV output on the HTTP listener
// (/<app>/<stream>.flv and .live.flv).
type FLVConfig struct {
	// AllowOrigin is the Access-Control-Allow-Origin header ("" sends no
	// CORS headers).
	AllowOrigin string `yaml:"allow_origin" json:"allow_origin"`
}

func defaultFLV() FLVConfig { return FLVConfig{AllowOrigin: "*"} }

func (c *Config) validateFLV(v *validator) {
	if strings.ContainsFunc(c.FLV.AllowOrigin, func(r rune) bool { return unicode.IsControl(r) || r > unicode.MaxASCII }) {
		v.add("flv.allow_origin", "%q contains control or non-ASCII characters", c.FLV.AllowOrigin)
	}
}
