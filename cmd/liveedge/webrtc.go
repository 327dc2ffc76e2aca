package main

import (
	"log/slog"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/webrtc"
	"github.com/liveedge/liveedge/signaling"
)

// startWebRTC opens the WebRTC UDP port and returns the media plane (nil
// when the port cannot be opened: WebRTC is an optional output, so the
// error is logged, the rest of the server runs and signalling answers
// 503) and the signalling handler routed from the HTTP listener.
func startWebRTC(cfg *config.Config, h *hub.Hub, log *slog.Logger) (*webrtc.Server, *signaling.Handler) {
	w := cfg.WebRTC
	allow, _ := config.ParsePrefixes(w.RemoteCandidates.Allow) // validated
	deny, _ := config.ParsePrefixes(w.RemoteCandidates.Deny)
	hostIPs, _ := config.ParsePrefixes(w.HostIPs)
	startDelay := w.StartDelay.Std()
	if startDelay == 0 {
		startDelay = -1 // none (the package's zero means its default)
	}
	srv, err := webrtc.New(webrtc.Params{
		Hub:         h,
		Logger:      log,
		UDPHost:     w.UDPHost,
		UDPPort:     w.UDPPort,
		TCPPort:     w.TCPPort,
		PublicIPs:   w.PublicIPs,
		Interfaces:  w.Interfaces,
		HostIPs:     hostIPs,
		Remote:      webrtc.CandidatePolicy{Allow: allow, Deny: deny},
		ICEServers:  w.ICEServers,
		PeerTimeout: w.PeerTimeout.Std(),
		StartDelay:  startDelay,
		GOP: cache.Limits{
			MaxBytes:    int(cfg.Hub.GOPCache.MaxBytes),
			MaxDuration: cfg.Hub.GOPCache.MaxDuration.Std(),
			MaxFrames:   cfg.Hub.GOPCache.MaxFrames,
			MaxLag:      cfg.Hub.MaxLag.Std(),
		},
	})
	if err != nil {
		log.Error("WebRTC disabled: cannot open its UDP port", "proto", "webrtc", "err", err)
		srv = nil
	} else {
		log.Info("listening", "proto", "webrtc", "addr", srv.UDPAddr().String())
	}
	sig := signaling.New(signaling.Params{Hub: h, WebRTC: srv, Logger: log,
		AllowOrigin: w.AllowOrigin, TokenParam: cfg.Auth.TokenParam})
	return srv, sig
}
