// Package signaling is the HTTP signalling in front of protocols/webrtc:
// WHEP (POST an SDP offer to /<app>/<stream>/whep, 201 with the answer and
// the session's Location; PATCH trickle ICE fragments to it; DELETE it to
// end the session) and the ZLMediaKit-style API
// (POST /index/api/webrtc?app=&stream=&type=play, JSON reply). Every offer
// goes through the hub's one admission call (a Bearer token or the token
// query parameter).
package signaling
