// Package static serves the player pages, embedded in the binary: the
// dashboard at "/" (the live streams with their viewers per protocol and
// source, and the origins' health, refreshed from the read-only
// StatusPath), a player at "/<app>/<stream>/" (WHEP by default,
// LL-HLS and HTTP-FLV as alternatives) and the third-party scripts it
// loads from "/static/vendor/<file>".
//
// The vendor folder holds a committed README and whatever `make vendor`
// installed from npm (hls.js and mpegts.js, pinned by package-lock.json;
// git-ignored). It is embedded as it is at build time, so the package
// always compiles; the player offers LL-HLS through hls.js only when
// hls.min.js was there (Safari plays HLS natively either way), and
// HTTP-FLV only when mpegts.js was.
package static

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/liveedge/liveedge/hub"
)

//go:embed index.html player.html
var pages embed.FS

//go:embed vendor
var vendor embed.FS

var tmpl = template.Must(template.ParseFS(pages, "index.html", "player.html"))

// VendorPrefix is the path the vendored scripts are served under.
const VendorPrefix = "/static/vendor/"

// HasHLSJS reports whether hls.js was embedded.
func HasHLSJS() bool {
	_, err := fs.Stat(vendor, "vendor/hls.min.js")
	return err == nil
}

// HasMPEGTS reports whether mpegts.js was embedded.
func HasMPEGTS() bool {
	_, err := fs.Stat(vendor, "vendor/mpegts.js")
	return err == nil
}

// Params configure a Handler.
type Params struct {
	Hub    *hub.Hub
	Logger *slog.Logger
	// Sources, if set, tells the dashboard where pulled streams come from
	// and how the probed origins are.
	Sources Sources
}

// Sources is what the dashboard shows of the origin pulls.
type Sources interface {
	// Pull returns the origin a stream is pulled from (without query or
	// credentials) and whether media flows; ok is false for a stream that
	// is not pulled.
	Pull(stream string) (origin string, up, ok bool)
	// Origins returns the background health of the probed origins.
	Origins() []OriginStatus
}

// OriginStatus is one probed origin on the dashboard.
type OriginStatus struct {
	Origin string  `json:"origin"`
	Up     bool    `json:"up"`
	RTTMs  float64 `json:"rtt_ms"`
}

// StatusPath is the dashboard's read-only JSON: the live streams with
// their viewers per protocol and source, and the origins' health. It
// holds nothing that is not on the page (no tokens, no credentials).
const StatusPath = "/status.json"

// Handler serves the pages.
type Handler struct {
	p      Params
	hlsjs  bool
	mpegts bool
	start  time.Time
}

// New returns a Handler.
func New(p Params) *Handler {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Handler{p: p, hlsjs: HasHLSJS(), mpegts: HasMPEGTS(), start: time.Now()}
}

// page is a parsed page path.
type page struct {
	index  bool
	status bool
	stream string // player of "app/stream"
	vendor string // a vendored file
}

func parsePath(p string) (page, bool) {
	if p == "/" {
		return page{index: true}, true
	}
	if p == StatusPath {
		return page{status: true}, true
	}
	if f, ok := strings.CutPrefix(p, VendorPrefix); ok {
		if f == "" || strings.ContainsAny(f, "/\\\x00") || strings.HasPrefix(f, ".") {
			return page{}, false
		}
		return page{vendor: f}, true
	}
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return page{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "" {
		return page{}, false
	}
	name := parts[0] + "/" + parts[1]
	if !hub.ValidName(name) {
		return page{}, false
	}
	return page{stream: name}, true
}

// Handles reports whether path is a page path: exactly "/",
// "/<app>/<stream>/" or a file under VendorPrefix.
func Handles(path string) bool {
	_, ok := parsePath(path)
	return ok
}

// streamRow is one line of the stream list.
type streamRow struct {
	Name     string         `json:"name"`
	URL      string         `json:"url"`
	Video    string         `json:"video"`
	Audio    string         `json:"audio"`
	Viewers  int            `json:"viewers"`
	ByProto  map[string]int `json:"by_protocol"`
	Source   string         `json:"source"`    // the origin of a pull, or the producer's protocol
	SourceUp bool           `json:"source_up"` // media flows from it
}

// rows returns the stream list, sorted by name.
func (h *Handler) rows() []streamRow {
	if h.p.Hub == nil {
		return nil
	}
	infos := h.p.Hub.Streams()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	rows := make([]streamRow, 0, len(infos))
	for _, s := range infos {
		app, name, _ := strings.Cut(s.Name, "/")
		row := streamRow{Name: s.Name, URL: "/" + url.PathEscape(app) + "/" + url.PathEscape(name) + "/",
			ByProto: map[string]int{}}
		if s.Video != nil {
			row.Video = s.Video.Codec.String()
			if s.Video.Width > 0 {
				row.Video += fmt.Sprintf(" %dx%d", s.Video.Width, s.Video.Height)
			}
		}
		if s.Audio != nil {
			row.Audio = s.Audio.Codec.String()
		}
		for p, n := range s.Viewers {
			row.Viewers += n
			row.ByProto[p] += n
		}
		if src := h.p.Sources; src != nil {
			if origin, up, ok := src.Pull(s.Name); ok {
				row.Source, row.SourceUp = origin, up
			}
		}
		if row.Source == "" && s.Producer != nil {
			row.Source, row.SourceUp = s.Producer.Protocol+" publisher", true
		}
		rows = append(rows, row)
	}
	return rows
}

// status is the body of StatusPath.
type status struct {
	Streams []streamRow    `json:"streams"`
	Origins []OriginStatus `json:"origins"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pg, ok := parsePath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	switch {
	case pg.vendor != "":
		f, err := fs.ReadFile(vendor, "vendor/"+pg.vendor)
		if err != nil || !strings.HasSuffix(pg.vendor, ".js") { // scripts only, not the README or the stamp
			http.NotFound(w, r)
			return
		}
		hd.Set("Cache-Control", "public, max-age=3600")
		http.ServeContent(w, r, pg.vendor, h.start, bytes.NewReader(f))
	case pg.status:
		st := status{Streams: h.rows(), Origins: []OriginStatus{}}
		if h.p.Sources != nil {
			st.Origins = append(st.Origins, h.p.Sources.Origins()...)
		}
		b, err := json.Marshal(st)
		if err != nil {
			http.Error(w, "status error", http.StatusInternalServerError)
			return
		}
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store")
		w.Write(b) //nolint:errcheck // the client may have left
	case pg.index:
		h.render(w, "index.html", map[string]any{"Streams": h.rows()})
	default:
		h.render(w, "player.html", map[string]any{"Stream": pg.stream, "HLSJS": h.hlsjs, "MPEGTS": h.mpegts})
	}
}

func (h *Handler) render(w http.ResponseWriter, name string, data any) {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
		h.p.Logger.Error("page template", "page", name, "err", err)
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.Write(b.Bytes()) //nolint:errcheck // the client may have left
}
