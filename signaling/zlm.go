package signaling

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/webrtc"
)

// zlmReply is the ZLMediaKit API's JSON reply.
type zlmReply struct {
	Code int    `json:"code"`
	Msg  string `json:"msg,omitempty"`
	SDP  string `json:"sdp,omitempty"`
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
}

// serveZLM is POST /index/api/webrtc?app=&stream=&type=play with the SDP
// offer as the body. As ZLMediaKit does, it always answers HTTP 200 with
// a JSON body whose code is 0 (success) or -1 (with msg); clients check
// the code. The session can be ended with DELETE /<app>/<stream>/whep/<id>.
func (h *Handler) serveZLM(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Allow", "OPTIONS, POST")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "OPTIONS, POST")
		httpError(w, http.StatusMethodNotAllowed, http.StatusText(http.StatusMethodNotAllowed))
		return
	}
	q := r.URL.Query()
	stream := q.Get("app") + "/" + q.Get("stream")
	switch {
	case q.Get("type") != "play":
		zlmFail(w, "only type=play is supported")
		return
	case !hub.ValidName(stream):
		zlmFail(w, "app and stream are required")
		return
	}
	if status := h.admit(r, stream); status != 0 {
		zlmFail(w, "not authorized")
		return
	}
	body, status := h.readBody(w, r)
	if status != 0 {
		zlmFail(w, bodyError(status))
		return
	}
	if h.p.WebRTC == nil {
		zlmFail(w, "WebRTC is not available on this server")
		return
	}
	ans, err := h.p.WebRTC.Offer(r.Context(), webrtc.Offer{Stream: stream, SDP: string(body), Remote: r.RemoteAddr})
	if err != nil {
		st, msg := h.offerError(err)
		if st == 0 {
			return
		}
		if errors.Is(err, hub.ErrNotFound) {
			msg = "stream not found"
		}
		zlmFail(w, msg)
		return
	}
	zlmWrite(w, zlmReply{Code: 0, SDP: ans.SDP, Type: "answer", ID: ans.ID})
}

func zlmFail(w http.ResponseWriter, msg string) {
	zlmWrite(w, zlmReply{Code: -1, Msg: msg})
}

func zlmWrite(w http.ResponseWriter, rep zlmReply) {
	b, _ := json.Marshal(rep)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b) //nolint:errcheck // the client may have left
}
