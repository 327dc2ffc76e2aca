package webrtc

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// offerInfo is what the server needs to know of an offer before it
// creates a peer.
type offerInfo struct {
	opus bool // the offer can receive Opus audio
}

// inspectOffer checks that an offer is a parsable SDP with ICE
// credentials and a DTLS fingerprint, and that it can receive H.264
// (packetization-mode=1) video.
func inspectOffer(raw string) (offerInfo, error) {
	var info offerInfo
	if strings.TrimSpace(raw) == "" {
		return info, fmt.Errorf("%w: empty body", ErrBadOffer)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		return info, fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	if len(d.MediaDescriptions) == 0 {
		return info, fmt.Errorf("%w: no media", ErrBadOffer)
	}
	_, sessUfrag := d.Attribute("ice-ufrag")
	_, sessFP := d.Attribute("fingerprint")
	h264 := false
	for _, m := range d.MediaDescriptions {
		_, ufrag := m.Attribute("ice-ufrag")
		_, fp := m.Attribute("fingerprint")
		if m.MediaName.Port.Value == 0 {
			continue // rejected or disabled
		}
		if !(ufrag || sessUfrag) || !(fp || sessFP) {
			return info, fmt.Errorf("%w: media %q has no ICE credentials or DTLS fingerprint", ErrBadOffer, m.MediaName.Media)
		}
		if !receives(m) {
			continue
		}
		switch m.MediaName.Media {
		case "video":
			if hasCodec(m, "h264", "packetization-mode=1") {
				h264 = true
			}
		case "audio":
			if hasCodec(m, "opus", "") {
				info.opus = true
			}
		}
	}
	if !h264 {
		return info, ErrNoH264
	}
	return info, nil
}

// receives reports whether the offerer wants to receive on m.
func receives(m *sdp.MediaDescription) bool {
	for _, a := range m.Attributes {
		switch a.Key {
		case "sendonly", "inactive":
			return false
		}
	}
	return true
}

// hasCodec reports whether m offers codec name (rtpmap, case-insensitive)
// with an fmtp containing want ("" for any).
func hasCodec(m *sdp.MediaDescription, name, want string) bool {
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(a.Value, " ")
		if !ok || !strings.HasPrefix(strings.ToLower(enc), name+"/") {
			continue
		}
		if want == "" {
			return true
		}
		for _, f := range m.Attributes {
			if f.Key == "fmtp" && strings.HasPrefix(f.Value, pt+" ") && strings.Contains(f.Value, want) {
				return true
			}
		}
	}
	return false
}
