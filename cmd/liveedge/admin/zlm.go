package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
)

// The ZLMediaKit-compatible subset lives under /index/api/<name>. As in
// ZLMediaKit, every call takes GET query parameters or a POST form or JSON
// body, and replies HTTP 200 with {"code":0,...} on success or a negative
// code and a msg on failure.
const zlmPrefix = "/index/api/"

// ZLMediaKit's result codes.
const (
	zlmSuccess     = 0
	zlmOtherFailed = -1
	zlmAuthFailed  = -100
	zlmInvalidArgs = -300
	zlmNotFound    = -500
)

// defaultVhost is ZLMediaKit's name of the only virtual host liveedge has.
const defaultVhost = "__defaultVhost__"

type zlmError struct {
	code int
	msg  string
}

func (e *zlmError) Error() string { return e.msg }

func invalidArgs(format string, args ...any) error {
	return &zlmError{zlmInvalidArgs, fmt.Sprintf(format, args...)}
}

type zlmHandler func(s *Server, q url.Values) (map[string]any, error)

var zlmAPI = map[string]zlmHandler{
	"getMediaList":    (*Server).zlmGetMediaList,
	"isMediaOnline":   (*Server).zlmIsMediaOnline,
	"close_streams":   (*Server).zlmCloseStreams,
	"addStreamProxy":  (*Server).zlmAddStreamProxy,
	"delStreamProxy":  (*Server).zlmDelStreamProxy,
	"listStreamProxy": (*Server).zlmListStreamProxy,
	"getAllSession":   (*Server).zlmGetAllSession,
	"kick_session":    (*Server).zlmKickSession,
	"getServerConfig": (*Server).zlmGetServerConfig,
}

func (s *Server) serveZLM(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"code": zlmInvalidArgs, "msg": "method not allowed"})
		return
	}
	q, err := zlmParams(r)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"code": zlmInvalidArgs, "msg": err.Error()})
		return
	}
	if !s.authorized(r, q.Get("secret")) {
		writeJSON(w, http.StatusOK, map[string]any{"code": zlmAuthFailed, "msg": "secret error (the secret parameter is missing or wrong)"})
		return
	}
	f := zlmAPI[strings.TrimPrefix(r.URL.Path, zlmPrefix)]
	if f == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": zlmNotFound, "msg": "no such API"})
		return
	}
	res, err := f(s, q)
	if err != nil {
		ze := &zlmError{zlmOtherFailed, err.Error()}
		errors.As(err, &ze)
		writeJSON(w, http.StatusOK, map[string]any{"code": ze.code, "msg": ze.msg})
		return
	}
	if res == nil {
		res = map[string]any{}
	}
	res["code"] = zlmSuccess
	writeJSON(w, http.StatusOK, res)
}

// zlmParams collects the query parameters and, for a POST, those of the
// form or JSON body (which win).
func zlmParams(r *http.Request) (url.Values, error) {
	q := r.URL.Query()
	if r.Method != http.MethodPost {
		return q, nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return nil, fmt.Errorf("body: %s", bodyError(err))
		}
		for k, v := range body {
			switch x := v.(type) {
			case string:
				q.Set(k, x)
			case bool:
				q.Set(k, strconv.FormatBool(x))
			case float64:
				q.Set(k, strconv.FormatFloat(x, 'f', -1, 64))
			case nil:
			default:
				return nil, fmt.Errorf("body: %s is not a string, number or boolean", k)
			}
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("body: %s", bodyError(err))
		}
		for k, vs := range r.PostForm {
			q[k] = vs
		}
	}
	return q, nil
}

// schemas are the ZLMediaKit schemas liveedge serves a stream in, with
// the viewer protocols each one covers (as in ZLMediaKit, HTTP-FLV
// players read the rtmp source and WebRTC players the rtsp one).
func (s *Server) schemas() []string { return s.config().Schemas() }

func schemaOf(protocol string) string {
	switch {
	case protocol == "rtmp" || strings.Contains(protocol, "flv"):
		return "rtmp"
	case protocol == "rtsp" || protocol == "webrtc":
		return "rtsp"
	case protocol == "hls":
		return "hls"
	}
	return ""
}

// zlmFilter holds the vhost/app/stream/schema filters of a call.
type zlmFilter struct{ schema, vhost, app, stream string }

func filterOf(q url.Values) zlmFilter {
	return zlmFilter{schema: q.Get("schema"), vhost: q.Get("vhost"), app: q.Get("app"), stream: q.Get("stream")}
}

func (f zlmFilter) matches(name string) bool {
	app, stream, _ := strings.Cut(name, "/")
	return (f.vhost == "" || f.vhost == defaultVhost) && (f.app == "" || f.app == app) &&
		(f.stream == "" || f.stream == stream)
}

// online lists the streams that have a producer and tracks, filtered.
func (s *Server) online(f zlmFilter) []hub.StreamInfo {
	var out []hub.StreamInfo
	for _, in := range s.p.Hub.Streams() {
		if in.Producer != nil && (in.Video != nil || in.Audio != nil) && f.matches(in.Name) {
			out = append(out, in)
		}
	}
	return out
}

// ZLMediaKit's MediaOriginType.
const (
	originUnknown  = 0
	originRTMPPush = 1
	originRTSPPush = 2
	originPull     = 4
	originRTCPush  = 8
)

var originTypeNames = map[int]string{originUnknown: "unknown", originRTMPPush: "rtmp_push",
	originRTSPPush: "rtsp_push", originPull: "pull", originRTCPush: "rtc_push"}

func (s *Server) zlmGetMediaList(q url.Values) (map[string]any, error) {
	f := filterOf(q)
	pulls := s.pulls()
	since := map[string]time.Time{}
	for _, si := range s.p.Hub.Sessions() {
		if si.Publisher {
			since[si.Stream] = si.Since
		}
	}
	data := []map[string]any{}
	for _, in := range s.online(f) {
		app, stream, _ := strings.Cut(in.Name, "/")
		readers := map[string]int{}
		for p, n := range in.Viewers {
			readers[schemaOf(p)] += n
		}
		ot, ourl := originUnknown, ""
		switch st, pulled := pulls[in.Name]; {
		case pulled:
			ot, ourl = originPull, st.Origin
		case in.Producer.Protocol == "demo":
			ot, ourl = originPull, config.DemoOrigin
		case in.Producer.Protocol == "rtmp":
			ot = originRTMPPush
		case in.Producer.Protocol == "rtsp":
			ot = originRTSPPush
		case in.Producer.Protocol == "webrtc":
			ot = originRTCPush
		}
		peerIP, peerPort := splitRemote(in.Producer.Remote)
		created := since[in.Name]
		for _, schema := range s.schemas() {
			if f.schema != "" && f.schema != schema {
				continue
			}
			e := map[string]any{
				"schema": schema, "vhost": defaultVhost, "app": app, "stream": stream,
				"readerCount": readers[schema], "totalReaderCount": viewersOf(in),
				"originType": ot, "originTypeStr": "MediaOriginType::" + originTypeNames[ot], "originUrl": ourl,
				"originSock": map[string]any{"identifier": in.Producer.Protocol, "local_ip": "", "local_port": 0,
					"peer_ip": peerIP, "peer_port": peerPort},
				"tracks": zlmTracks(in),
			}
			if !created.IsZero() {
				e["createStamp"] = created.Unix()
				e["aliveSecond"] = int64(time.Since(created).Seconds())
			}
			data = append(data, e)
		}
	}
	return map[string]any{"data": data}, nil
}

// zlmTracks describes the tracks with ZLMediaKit's codec ids and names.
func zlmTracks(in hub.StreamInfo) []map[string]any {
	out := []map[string]any{}
	codec := func(c hub.Codec) (int, string) {
		switch c {
		case hub.CodecH264:
			return 0, "H264"
		case hub.CodecH265:
			return 1, "H265"
		case hub.CodecAAC:
			return 2, "mpeg4-generic"
		case hub.CodecOpus:
			return 5, "opus"
		}
		return -1, c.String()
	}
	if t := in.Video; t != nil {
		id, name := codec(t.Codec)
		out = append(out, map[string]any{"codec_id": id, "codec_id_name": name, "codec_type": 0, "ready": true,
			"width": t.Width, "height": t.Height, "fps": t.FPS})
	}
	if t := in.Audio; t != nil {
		id, name := codec(t.Codec)
		out = append(out, map[string]any{"codec_id": id, "codec_id_name": name, "codec_type": 1, "ready": true,
			"sample_rate": t.SampleRate, "channels": t.Channels, "sample_bit": 16})
	}
	return out
}

func (s *Server) zlmIsMediaOnline(q url.Values) (map[string]any, error) {
	f := filterOf(q)
	if f.schema == "" || f.app == "" || f.stream == "" {
		return nil, invalidArgs("schema, app and stream are required")
	}
	served := false
	for _, sc := range s.schemas() {
		served = served || sc == f.schema
	}
	return map[string]any{"online": served && len(s.online(f)) > 0}, nil
}

func (s *Server) zlmCloseStreams(q url.Values) (map[string]any, error) {
	f := filterOf(q)
	if f.schema != "" {
		served := false
		for _, sc := range s.schemas() {
			served = served || sc == f.schema
		}
		if !served {
			return map[string]any{"count_hit": 0, "count_closed": 0}, nil
		}
	}
	force := truthy(q.Get("force"))
	hit, closed := 0, 0
	for _, in := range s.online(f) {
		hit++
		if !force && viewersOf(in) > 0 {
			continue
		}
		s.removeProxy(in.Name)
		if s.p.Hub.CloseStream(in.Name) {
			closed++
		}
	}
	return map[string]any{"count_hit": hit, "count_closed": closed}, nil
}

func (s *Server) zlmAddStreamProxy(q url.Values) (map[string]any, error) {
	vhost, app, stream, u := q.Get("vhost"), q.Get("app"), q.Get("stream"), q.Get("url")
	if vhost == "" {
		vhost = defaultVhost
	}
	if app == "" || stream == "" || u == "" {
		return nil, invalidArgs("app, stream and url are required")
	}
	if vhost != defaultVhost {
		return nil, invalidArgs("vhost: only %s is supported", defaultVhost)
	}
	p := source.Proxy{Stream: app + "/" + stream, Origins: []string{u}, Mode: q.Get("mode")}
	if err := s.addProxy(p); err != nil {
		switch {
		case errors.Is(err, source.ErrProxyExists):
			return nil, &zlmError{zlmOtherFailed, "This stream already exists"}
		case errors.Is(err, errNoSources):
			return nil, err
		}
		return nil, invalidArgs("%v", err)
	}
	return map[string]any{"data": map[string]any{"key": vhost + "/" + p.Stream}}, nil
}

// proxyName turns a ZLMediaKit proxy key ("vhost/app/stream", or
// "app/stream") into a stream name.
func proxyName(key string) (string, bool) {
	parts := strings.Split(key, "/")
	switch {
	case len(parts) == 3 && (parts[0] == defaultVhost || parts[0] == ""):
		parts = parts[1:]
	case len(parts) != 2:
		return "", false
	}
	name := parts[0] + "/" + parts[1]
	return name, hub.ValidName(name)
}

func (s *Server) zlmDelStreamProxy(q url.Values) (map[string]any, error) {
	key := q.Get("key")
	if key == "" {
		return nil, invalidArgs("key is required")
	}
	name, ok := proxyName(key)
	if !ok {
		return nil, invalidArgs("key: %q is not vhost/app/stream", key)
	}
	return map[string]any{"data": map[string]any{"flag": s.removeProxy(name)}}, nil
}

func (s *Server) zlmListStreamProxy(q url.Values) (map[string]any, error) {
	data := []map[string]any{}
	if s.p.Sources == nil {
		return map[string]any{"data": data}, nil
	}
	pulls := s.pulls()
	for _, p := range s.proxies() {
		app, stream, _ := strings.Cut(p.Stream, "/")
		e := map[string]any{"key": defaultVhost + "/" + p.Stream, "mode": p.Mode, "origins": p.Origins,
			"src": map[string]any{"vhost": defaultVhost, "app": app, "stream": stream}, "status": -1}
		if len(p.Origins) > 0 {
			e["url"] = p.Origins[0]
		}
		if st, ok := pulls[p.Stream]; ok {
			if st.Up {
				e["status"] = 0
				e["liveSecs"] = int64(time.Since(st.Since).Seconds())
			}
			e["rePullCount"] = st.Failures
		}
		data = append(data, e)
	}
	return map[string]any{"data": data}, nil
}

// zlmTypeIDs are ZLMediaKit's session class names, by protocol.
var zlmTypeIDs = map[string]string{"rtmp": "mediakit::RtmpSession", "rtsp": "mediakit::RtspSession",
	"webrtc": "mediakit::WebRtcSession", "hls": "mediakit::HttpSession", "flv": "mediakit::HttpSession",
	"ws-flv": "mediakit::HttpSession"}

func (s *Server) zlmGetAllSession(q url.Values) (map[string]any, error) {
	wantPort, wantPeer := q.Get("local_port"), q.Get("peer_ip")
	data := []map[string]any{}
	for _, si := range s.p.Hub.Sessions() {
		if si.Protocol == "pull" || si.Protocol == "demo" {
			continue // the edge's own producers, not client connections
		}
		peerIP, peerPort := splitRemote(si.Remote)
		localIP, localPort := s.localAddr(si.Protocol)
		if (wantPort != "" && wantPort != strconv.Itoa(localPort)) || (wantPeer != "" && wantPeer != peerIP) {
			continue
		}
		typeID := zlmTypeIDs[si.Protocol]
		if typeID == "" {
			typeID = "mediakit::" + si.Protocol
		}
		data = append(data, map[string]any{"id": strconv.FormatUint(si.ID, 10), "local_ip": localIP,
			"local_port": localPort, "peer_ip": peerIP, "peer_port": peerPort, "typeid": typeID,
			"stream": si.Stream, "protocol": si.Protocol, "publisher": si.Publisher})
	}
	return map[string]any{"data": data}, nil
}

// localAddr is the configured listen address of protocol's listener.
func (s *Server) localAddr(protocol string) (string, int) {
	c := s.config()
	var listen string
	switch protocol {
	case "rtmp":
		listen = c.RTMP.Listen
	case "rtsp":
		listen = c.RTSP.Listen
	case "webrtc":
		return c.WebRTC.UDPHost, c.WebRTC.UDPPort
	default:
		listen = c.HTTP.Listen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0
	}
	n, _ := strconv.Atoi(port)
	if host == "" {
		host = "0.0.0.0"
	}
	return host, n
}

func (s *Server) zlmKickSession(q url.Values) (map[string]any, error) {
	id, err := strconv.ParseUint(q.Get("id"), 10, 64)
	if err != nil {
		return nil, invalidArgs("id: a session id is required")
	}
	if err := s.p.Hub.Kick(id); err != nil {
		return nil, &zlmError{zlmNotFound, "can not find the session"}
	}
	return map[string]any{"msg": "success"}, nil
}

func (s *Server) zlmGetServerConfig(url.Values) (map[string]any, error) {
	b, err := json.Marshal(s.config().Redacted())
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	flat := map[string]string{}
	flatten("", tree, flat)
	for k, v := range flat {
		if strings.HasPrefix(k, "streams.") && strings.Contains(k, ".origins.") {
			flat[k] = redactOrigin(v)
		}
	}
	return map[string]any{"data": []map[string]string{flat}}, nil
}

// flatten turns a JSON tree into "section.key" → value strings, list
// items by index ("streams.0.match").
func flatten(prefix string, v any, out map[string]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flatten(join(k), x[k], out)
		}
	case []any:
		if len(x) == 0 {
			out[prefix] = ""
		}
		for i, e := range x {
			flatten(join(strconv.Itoa(i)), e, out)
		}
	case string:
		out[prefix] = x
	case bool:
		out[prefix] = map[bool]string{true: "1", false: "0"}[x]
	case float64:
		out[prefix] = strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		out[prefix] = ""
	}
}

// splitRemote splits "ip:port"; anything else is returned whole.
func splitRemote(remote string) (string, int) {
	host, port, err := net.SplitHostPort(remote)
	if err != nil {
		return remote, 0
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

func truthy(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && b
}
