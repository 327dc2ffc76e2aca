package main

import (
	"strings"
	"testing"
)

func TestServerConfigRTSP(t *testing.T) {
	tests := []struct {
		listeners []string
		want      string
	}{
		{[]string{"rtmp"}, `rtsp: {listen: ""}`},
		{[]string{"rtmp", "http"}, `rtsp: {listen: ""}`},
		{[]string{"rtmp", "rtsp"}, `rtsp: {listen: "127.0.0.1:0", udp_rtp_port: 0}`},
	}
	for _, tc := range tests {
		if c := serverConfig(tc.listeners); !strings.Contains(c, tc.want+"\n") {
			t.Errorf("serverConfig(%v) = %q, want a line %q", tc.listeners, c, tc.want)
		}
	}
}

func TestRTSPTable(t *testing.T) {
	cols := rtspKind{}.tableColumns()
	for _, c := range cols {
		if c.head == "ttff p95" && (c.miss(targetRTSPTTFFp95) || !c.miss(targetRTSPTTFFp95+1)) {
			t.Error("ttff p95 not marked against the RTSP target")
		}
	}
	// The shared RTMP columns keep their own target.
	for _, c := range columns {
		if c.head == "ttff p95" && !c.miss(targetTTFFp95+1) {
			t.Error("RTMP ttff p95 column changed")
		}
	}
}
