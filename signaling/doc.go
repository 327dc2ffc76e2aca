// Package signaling will hold WebRTC signalling (WHEP, the ZLMediaKit-style
// API and the WebSocket endpoint) in front of protocols/webrtc.
package signaling
