package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
)

// Track is one track of a stream in the JSON API.
type Track struct {
	Type       string  `json:"type"` // video | audio
	Codec      string  `json:"codec"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
}

// Producer is who feeds a stream.
type Producer struct {
	Protocol string `json:"protocol"`
	Remote   string `json:"remote"`
}

// GOP is the state of a stream's cache.
type GOP struct {
	Frames int  `json:"frames"` // units since the newest keyframe
	Bytes  int  `json:"bytes"`
	Valid  bool `json:"valid"` // starts on a keyframe
	// Units and UnitBytes count everything the ring holds.
	Units     int `json:"units"`
	UnitBytes int `json:"unit_bytes"`
}

// Pull is the state of a stream's origin pull.
type Pull struct {
	Origin    string    `json:"origin"`
	Up        bool      `json:"up"`
	Connects  uint64    `json:"connects"`
	Failures  uint64    `json:"failures"`
	Failovers uint64    `json:"failovers"`
	Failbacks uint64    `json:"failbacks"`
	BytesIn   uint64    `json:"bytes_in"`
	Since     time.Time `json:"since"`
}

// Stream is one stream in the JSON API.
type Stream struct {
	Name         string         `json:"name"`
	App          string         `json:"app"`
	Stream       string         `json:"stream"`
	Tracks       []Track        `json:"tracks"`
	Producer     *Producer      `json:"producer"`
	Viewers      map[string]int `json:"viewers"`
	ViewersTotal int            `json:"viewers_total"`
	Waiting      int            `json:"waiting"`
	GOP          GOP            `json:"gop"`
	Pull         *Pull          `json:"pull,omitempty"`
	Proxy        bool           `json:"proxy"` // pulled by a proxy added at run time
	// BytesIn and BitrateIn (bit/s, over the last few seconds) are the
	// stream's media payload in; BytesOut and BitrateOut, by protocol,
	// what was written to its viewers, framing included.
	BytesIn    uint64            `json:"bytes_in"`
	BitrateIn  int64             `json:"bitrate_in"`
	BytesOut   map[string]uint64 `json:"bytes_out"`
	BitrateOut map[string]int64  `json:"bitrate_out"`
}

// Origin is the background health of one origin.
type Origin struct {
	Origin     string    `json:"origin"`
	Known      bool      `json:"known"`
	Up         bool      `json:"up"`
	RTTSeconds float64   `json:"rtt_seconds"`
	Since      time.Time `json:"since"`
	LastError  string    `json:"last_error,omitempty"`
	Interval   string    `json:"interval"`
}

// Version is the reply of /api/v1/version.
type Version struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Uptime  string `json:"uptime"`
}

func (s *Server) routeAPI() {
	s.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	s.mux.HandleFunc("/api/v1/version", s.only(http.MethodGet, s.apiVersion))
	s.mux.HandleFunc("/api/v1/streams", s.only(http.MethodGet, s.apiStreams))
	s.mux.HandleFunc("/api/v1/streams/{app}/{stream}", s.apiStream)
	s.mux.HandleFunc("/api/v1/sessions", s.only(http.MethodGet, s.apiSessions))
	s.mux.HandleFunc("/api/v1/sessions/{id}", s.only(http.MethodDelete, s.apiKick))
	s.mux.HandleFunc("/api/v1/origins", s.only(http.MethodGet, s.apiOrigins))
	s.mux.HandleFunc("/api/v1/proxies", s.apiProxies)
	s.mux.HandleFunc("/api/v1/proxies/{app}/{stream}", s.only(http.MethodDelete, s.apiDelProxy))
	s.mux.HandleFunc("/api/v1/reload", s.only(http.MethodPost, s.apiReload))
}

// apiReload reads the configuration file again (as SIGHUP does): 200 with
// the sections that need a restart, or 400 with why the new file was
// refused (the running configuration stays).
func (s *Server) apiReload(w http.ResponseWriter, _ *http.Request) {
	if s.p.Reload == nil {
		writeError(w, http.StatusNotImplemented, "no configuration file to reload")
		return
	}
	restart, err := s.p.Reload()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if restart == nil {
		restart = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "restart_needed": restart})
}

// only answers 405 to methods other than method.
func (s *Server) only(method string, f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		f(w, r)
	}
}

func (s *Server) apiVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Version{Version: s.p.Version, Go: runtime.Version(), OS: runtime.GOOS,
		Arch: runtime.GOARCH, Uptime: time.Since(s.start).Round(time.Second).String()})
}

func (s *Server) apiStreams(w http.ResponseWriter, r *http.Request) {
	infos := s.p.Hub.Streams()
	pulls, proxies := s.pulls(), s.proxySet()
	out := make([]Stream, 0, len(infos))
	for _, in := range infos {
		out = append(out, streamView(in, pulls, proxies))
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": out})
}

func (s *Server) apiStream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app") + "/" + r.PathValue("stream")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		in, ok := s.p.Hub.Stream(name)
		if !ok {
			writeError(w, http.StatusNotFound, "no stream "+name)
			return
		}
		writeJSON(w, http.StatusOK, streamView(in, s.pulls(), s.proxySet()))
	case http.MethodDelete:
		removed := s.removeProxy(name)
		closed := s.p.Hub.CloseStream(name)
		if !closed && !removed {
			writeError(w, http.StatusNotFound, "no stream "+name)
			return
		}
		s.log.Info("stream closed by the admin API", "stream", name, "proxy_removed", removed)
		writeJSON(w, http.StatusOK, map[string]any{"stream": name, "closed": closed, "proxy_removed": removed})
	default:
		w.Header().Set("Allow", "GET, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func (s *Server) apiSessions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sessions": s.p.Hub.Sessions()})
}

func (s *Server) apiKick(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "session id must be a number")
		return
	}
	if err := s.p.Hub.Kick(id); err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"kicked": id})
}

func (s *Server) apiOrigins(w http.ResponseWriter, r *http.Request) {
	out := []Origin{}
	if s.p.Sources != nil {
		for _, h := range s.p.Sources.Health() {
			out = append(out, Origin{Origin: h.Origin, Known: h.Known, Up: h.Up, RTTSeconds: h.RTT.Seconds(),
				Since: h.Since, LastError: h.LastErr, Interval: h.Interval.String()})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"origins": out})
}

func (s *Server) apiProxies(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, map[string]any{"proxies": s.proxies()})
	case http.MethodPost:
		var p source.Proxy
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+bodyError(err))
			return
		}
		if dec.Decode(&struct{}{}) != io.EOF {
			writeError(w, http.StatusBadRequest, "body: more than one JSON value")
			return
		}
		if err := s.addProxy(p); err != nil {
			code := http.StatusBadRequest
			switch {
			case errors.Is(err, source.ErrProxyExists):
				code = http.StatusConflict
			case errors.Is(err, errNoSources):
				code = http.StatusNotImplemented
			}
			writeError(w, code, err.Error())
			return
		}
		if p.Mode == "" {
			p.Mode = "static"
		}
		p.Origins = redactOrigins(p.Origins)
		writeJSON(w, http.StatusCreated, p)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func (s *Server) apiDelProxy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app") + "/" + r.PathValue("stream")
	if s.p.Sources == nil {
		writeError(w, http.StatusNotFound, "no proxy for "+name)
		return
	}
	if err := s.p.Sources.RemoveProxy(name); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, source.ErrNoProxy) {
			code = http.StatusNotFound
		}
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": name})
}

var errNoSources = errors.New("no source manager")

func (s *Server) addProxy(p source.Proxy) error {
	if s.p.Sources == nil {
		return errNoSources
	}
	if err := s.p.Sources.AddProxy(p); err != nil {
		return err
	}
	s.log.Info("proxy added by the admin API", "stream", p.Stream, "mode", p.Mode)
	return nil
}

// removeProxy removes name's run-time proxy, if it has one.
func (s *Server) removeProxy(name string) bool {
	if s.p.Sources == nil {
		return false
	}
	return s.p.Sources.RemoveProxy(name) == nil
}

// proxies lists the run-time proxies with their origin URLs redacted.
func (s *Server) proxies() []source.Proxy {
	out := []source.Proxy{}
	if s.p.Sources == nil {
		return out
	}
	for _, p := range s.p.Sources.Proxies() {
		p.Origins = redactOrigins(p.Origins)
		out = append(out, p)
	}
	return out
}

// redactOrigin drops the user info and query (credentials, tokens) of an
// origin URL.
func redactOrigin(o string) string {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || (u.User == nil && u.RawQuery == "") {
		return o
	}
	u.User, u.RawQuery, u.ForceQuery = nil, "", false
	return u.String()
}

func redactOrigins(list []string) []string {
	out := make([]string, len(list))
	for i, o := range list {
		out[i] = redactOrigin(o)
	}
	return out
}

func (s *Server) pulls() map[string]source.Stats {
	if s.p.Sources == nil {
		return nil
	}
	return s.p.Sources.Pulls()
}

func (s *Server) proxySet() map[string]source.Proxy {
	if s.p.Sources == nil {
		return nil
	}
	out := map[string]source.Proxy{}
	for _, p := range s.p.Sources.Proxies() {
		out[p.Stream] = p
	}
	return out
}

func streamView(in hub.StreamInfo, pulls map[string]source.Stats, proxies map[string]source.Proxy) Stream {
	app, stream, _ := strings.Cut(in.Name, "/")
	v := Stream{Name: in.Name, App: app, Stream: stream, Tracks: tracks(in), Viewers: map[string]int{},
		Waiting: in.Waiting,
		GOP: GOP{Frames: in.GOP.GOPItems, Bytes: in.GOP.GOPBytes, Valid: in.GOP.GOPValid,
			Units: in.GOP.Items, UnitBytes: in.GOP.Bytes}}
	if in.Producer != nil {
		v.Producer = &Producer{Protocol: in.Producer.Protocol, Remote: in.Producer.Remote}
	}
	for p, n := range in.Viewers {
		v.Viewers[p] = n
		v.ViewersTotal += n
	}
	if st, ok := pulls[in.Name]; ok {
		v.Pull = &Pull{Origin: st.Origin, Up: st.Up, Connects: st.Connects, Failures: st.Failures,
			Failovers: st.Failovers, Failbacks: st.Failbacks, BytesIn: st.BytesIn, Since: st.Since}
	}
	_, v.Proxy = proxies[in.Name]
	v.BytesIn, v.BitrateIn = in.BytesIn, int64(in.BitrateIn)
	v.BytesOut, v.BitrateOut = map[string]uint64{}, map[string]int64{}
	for p, n := range in.BytesOut {
		v.BytesOut[p] = n
		v.BitrateOut[p] = int64(in.BitrateOut[p])
	}
	return v
}

func tracks(in hub.StreamInfo) []Track {
	out := []Track{}
	if t := in.Video; t != nil {
		out = append(out, Track{Type: "video", Codec: t.Codec.String(), Width: t.Width, Height: t.Height, FPS: t.FPS})
	}
	if t := in.Audio; t != nil {
		out = append(out, Track{Type: "audio", Codec: t.Codec.String(), SampleRate: t.SampleRate, Channels: t.Channels})
	}
	return out
}

func viewersOf(in hub.StreamInfo) int {
	n := 0
	for _, v := range in.Viewers {
		n += v
	}
	return n
}

func bodyError(err error) string {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Sprintf("larger than %d bytes", mbe.Limit)
	}
	return err.Error()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the reply failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
