package signaling

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/webrtc"
)

// DefaultMaxBody is the largest SDP offer or trickle fragment accepted.
const DefaultMaxBody = 64 << 10

// Media types.
const (
	typeSDP     = "application/sdp"
	typeSDPFrag = "application/trickle-ice-sdpfrag"
)

// Params configure a Handler.
type Params struct {
	Hub *hub.Hub
	// WebRTC is the media plane; nil answers 503 (WebRTC unavailable).
	WebRTC *webrtc.Server
	Logger *slog.Logger
	// AllowOrigin is the Access-Control-Allow-Origin value; "" sends no
	// CORS headers.
	AllowOrigin string
	// TokenParam names the token query parameter (default "token"), to
	// tell a missing token (401) from a refused one (403).
	TokenParam string
	// MaxBody limits request bodies (default DefaultMaxBody).
	MaxBody int64
	// OfferTimeout closes a WebSocket that has had no session for this
	// long, with 1008 (default DefaultOfferTimeout): a socket that never
	// offers, or whose offers all failed, holds nothing open for good.
	OfferTimeout time.Duration
}

// DefaultOfferTimeout is the default of Params.OfferTimeout.
const DefaultOfferTimeout = 60 * time.Second

// Handler serves the signalling endpoints.
type Handler struct {
	p   Params
	log *slog.Logger
	ws  wsConns
}

// New returns a Handler.
func New(p Params) *Handler {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.TokenParam == "" {
		p.TokenParam = auth.DefaultTokenParam
	}
	if p.MaxBody <= 0 {
		p.MaxBody = DefaultMaxBody
	}
	if p.OfferTimeout <= 0 {
		p.OfferTimeout = DefaultOfferTimeout
	}
	return &Handler{p: p, log: p.Logger.With("proto", "webrtc")}
}

// zlmPath is the ZLMediaKit-style API.
const zlmPath = "/index/api/webrtc"

// route is a parsed signalling path.
type route struct {
	stream string // "app/stream"
	id     string // WHEP session id, for /whep/<id>
	zlm    bool
	ws     bool // WebSocket signalling, /<app>/<stream>/ws
}

// parsePath accepts /<app>/<stream>/whep, /<app>/<stream>/whep/<id>,
// /<app>/<stream>/ws and the ZLMediaKit API path.
func parsePath(p string) (route, bool) {
	if p == zlmPath {
		return route{zlm: true}, true
	}
	rest, ok := strings.CutPrefix(p, "/")
	if !ok || strings.ContainsAny(p, "\\\x00") {
		return route{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) == 3 && parts[2] == "ws" {
		r := route{stream: parts[0] + "/" + parts[1], ws: true}
		return r, hub.ValidName(r.stream)
	}
	if (len(parts) != 3 && len(parts) != 4) || parts[2] != "whep" {
		return route{}, false
	}
	r := route{stream: parts[0] + "/" + parts[1]}
	if !hub.ValidName(r.stream) {
		return route{}, false
	}
	if len(parts) == 4 {
		r.id = parts[3]
		if !validID(r.id) {
			return route{}, false
		}
	}
	return r, true
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Handles reports whether path is a signalling path, so the shared HTTP
// router can send it here.
func Handles(path string) bool {
	_, ok := parsePath(path)
	return ok
}

// ServeHTTP serves WHEP and the ZLMediaKit-style API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := parsePath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if rt.ws {
		h.serveWS(w, r, rt)
		return
	}
	h.cors(w, r)
	switch {
	case rt.zlm:
		h.serveZLM(w, r)
	case rt.id == "":
		h.serveEndpoint(w, r, rt)
	default:
		h.serveSession(w, r, rt)
	}
}

func (h *Handler) cors(w http.ResponseWriter, r *http.Request) {
	if h.p.AllowOrigin == "" {
		return
	}
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", h.p.AllowOrigin)
	if h.p.AllowOrigin != "*" {
		hd.Add("Vary", "Origin")
	}
	hd.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch")
	if r.Method == http.MethodOptions {
		hd.Set("Access-Control-Allow-Methods", "OPTIONS, POST, PATCH, DELETE")
		hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		hd.Set("Access-Control-Max-Age", "86400")
	}
}

// iceLinks adds the ICE servers as Link headers (RFC 9725 section 4.6).
func (h *Handler) iceLinks(w http.ResponseWriter) {
	if h.p.WebRTC == nil {
		return
	}
	for _, u := range h.p.WebRTC.ICEServers() {
		w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="ice-server"`, u))
	}
}

// serveEndpoint is the WHEP endpoint: POST an offer, OPTIONS.
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, rt route) {
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Allow", "OPTIONS, POST")
		w.Header().Set("Accept-Post", typeSDP)
		h.iceLinks(w)
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "OPTIONS, POST")
		httpError(w, http.StatusMethodNotAllowed, "use POST with an SDP offer")
		return
	}
	if !hasType(r, typeSDP) {
		httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be "+typeSDP)
		return
	}
	if status := h.admit(r, rt.stream); status != 0 {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="liveedge"`)
		}
		httpError(w, status, http.StatusText(status))
		return
	}
	body, status := h.readBody(w, r)
	if status != 0 {
		httpError(w, status, bodyError(status))
		return
	}
	if h.p.WebRTC == nil {
		httpError(w, http.StatusServiceUnavailable, "WebRTC is not available on this server")
		return
	}
	ans, err := h.p.WebRTC.Offer(r.Context(), webrtc.Offer{Stream: rt.stream, SDP: string(body), Remote: r.RemoteAddr})
	if err != nil {
		status, msg := h.offerError(err)
		if status != 0 {
			httpError(w, status, msg)
		}
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", typeSDP)
	hd.Set("Location", "/"+rt.stream+"/whep/"+ans.ID)
	hd.Set("ETag", ans.ETag)
	hd.Set("Accept-Patch", typeSDPFrag)
	hd.Set("Cache-Control", "no-store")
	h.iceLinks(w)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, ans.SDP) //nolint:errcheck // the client may have left
}

// serveSession is a WHEP session resource: PATCH (trickle), DELETE.
func (h *Handler) serveSession(w http.ResponseWriter, r *http.Request, rt route) {
	const allow = "OPTIONS, PATCH, DELETE"
	if h.p.WebRTC == nil {
		httpError(w, http.StatusNotFound, "no such session")
		return
	}
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Allow", allow)
		w.Header().Set("Accept-Patch", typeSDPFrag)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if err := h.p.WebRTC.Remove(rt.stream, rt.id); err != nil {
			httpError(w, http.StatusNotFound, "no such session")
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch:
		if !hasType(r, typeSDPFrag) {
			httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be "+typeSDPFrag)
			return
		}
		if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != `"`+rt.id[:min(16, len(rt.id))]+`"` {
			httpError(w, http.StatusPreconditionFailed, "ETag does not match the session")
			return
		}
		body, status := h.readBody(w, r)
		if status != 0 {
			httpError(w, status, bodyError(status))
			return
		}
		err := h.p.WebRTC.Trickle(rt.stream, rt.id, string(body))
		switch {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, webrtc.ErrNoSession):
			httpError(w, http.StatusNotFound, "no such session")
		case errors.Is(err, webrtc.ErrICERestart):
			httpError(w, http.StatusUnprocessableEntity, err.Error())
		default:
			httpError(w, http.StatusBadRequest, err.Error())
		}
	default:
		w.Header().Set("Allow", allow)
		httpError(w, http.StatusMethodNotAllowed, http.StatusText(http.StatusMethodNotAllowed))
	}
}

// admit runs the hub's admission for a play of stream; it returns 0 when
// admitted, 401 when no token was given and one is needed, 403 when the
// token (or anything else) was refused.
func (h *Handler) admit(r *http.Request, stream string) int {
	req := auth.FromHTTP(r, auth.Play, stream)
	if err := h.p.Hub.Admit(req, hub.Session{Protocol: "webrtc", Remote: r.RemoteAddr}); err != nil {
		if req.Bearer == "" && req.Query.Get(h.p.TokenParam) == "" {
			return http.StatusUnauthorized
		}
		return http.StatusForbidden
	}
	return 0
}

// readBody reads a body of at most MaxBody bytes; the status is 413 for
// a larger one, 400 for a failed read.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int) {
	if r.ContentLength > h.p.MaxBody {
		return nil, http.StatusRequestEntityTooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.p.MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, http.StatusRequestEntityTooLarge
		}
		return nil, http.StatusBadRequest
	}
	return b, 0
}

func bodyError(status int) string {
	if status == http.StatusRequestEntityTooLarge {
		return "body too large"
	}
	return "could not read the body"
}

// offerError maps an Offer error to a status and message; status 0 means
// the client left and nothing is to be written.
func (h *Handler) offerError(err error) (int, string) {
	switch {
	case errors.Is(err, webrtc.ErrBadOffer), errors.Is(err, webrtc.ErrNoH264):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, webrtc.ErrStreamCodec):
		return http.StatusNotAcceptable, err.Error()
	case errors.Is(err, hub.ErrNotFound), errors.Is(err, hub.ErrStreamEnded), errors.Is(err, hub.ErrInvalidName):
		return http.StatusNotFound, "stream not found"
	case errors.Is(err, webrtc.ErrTooManyPeers), errors.Is(err, webrtc.ErrClosed), errors.Is(err, hub.ErrHubClosed),
		errors.Is(err, hub.ErrLimit):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, context.Canceled):
		return 0, ""
	}
	h.log.Warn("webrtc offer failed", "err", err)
	return http.StatusInternalServerError, "could not create the session"
}

func hasType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, want)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	http.Error(w, msg, status)
}
