package hooks

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
)

// DefaultVhost is ZLMediaKit's name of the only virtual host liveedge has.
const DefaultVhost = "__defaultVhost__"

// Defaults of Params.
const (
	DefaultQueueSize = 256
	DefaultWorkers   = 2
	// maxCacheEntries bounds the admission cache; past it, answers are not
	// cached.
	maxCacheEntries = 10000
	// logEvery is the least time between two logs of the same trouble
	// (dropped events, failing hooks).
	logEvery = 10 * time.Second
)

// Params configure Hooks.
type Params struct {
	Config config.HooksConfig
	Logger *slog.Logger
	// TokenParam is the query parameter of viewers' tokens (default
	// "token"), part of the admission cache key and redacted in logs.
	TokenParam string
	// Schemas are the ZLMediaKit schemas on_stream_changed is posted for,
	// one call each (default DefaultSchemas; see config.Config.Schemas).
	Schemas []string
	// QueueSize bounds the event queue (default 256, shared among the
	// workers); Workers is how many event hooks run at once (default 2).
	// A stream's events are posted in order, by one worker.
	QueueSize, Workers int
}

// Streams is what the hooks need of the hub.
type Streams interface {
	Stream(name string) (hub.StreamInfo, bool)
	CloseStream(name string) bool
}

// Puller is what on_stream_not_found needs of the source manager.
type Puller interface {
	AddProxy(p source.Proxy) error
	RemoveProxy(stream string) error
	Want(name string)
}

// DefaultSchemas are the schemas of Params.Schemas when none are given.
var DefaultSchemas = []string{"rtmp", "rtsp", "hls"}

// Hooks calls the configured webhooks.
type Hooks struct {
	// cur is the configuration in effect; Reconfigure replaces it.
	cur      atomic.Pointer[setup]
	log      *slog.Logger
	tokenKey string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// queues feed the workers, one each; a stream's events all go to the
	// same one, so that they are posted in order.
	queues []chan func(ctx context.Context)

	dropped  atomic.Uint64
	dropLog  every
	failLog  every
	eventLog every

	mu      sync.Mutex
	streams Streams
	puller  Puller
	closed  bool
	cache   map[string]*answer
	swept   time.Time             // when a full cache was last swept of expired answers
	timers  map[string]*noneTimer // on_stream_none_reader, by stream
	finding map[string]bool       // on_stream_not_found in flight
	proxies map[string]bool       // pulls added from on_stream_not_found
	clients []*client             // every client made, closed by Close
}

// setup is a hooks configuration and what is derived from it.
type setup struct {
	cfg      config.HooksConfig
	serverID string
	schemas  []string
	c        *client
}

// conf returns the configuration in effect.
func (h *Hooks) conf() *setup { return h.cur.Load() }

// newSetup derives a setup from cfg, reusing old's client when the client
// settings did not change.
func newSetup(cfg config.HooksConfig, schemas []string, old *setup) *setup {
	id := cfg.MediaServerID
	if id == "" {
		id, _ = os.Hostname()
	}
	if len(schemas) == 0 {
		schemas = DefaultSchemas
	}
	st := &setup{cfg: cfg, serverID: id, schemas: slices.Clone(schemas)}
	if old != nil && old.cfg.Timeout == cfg.Timeout && old.cfg.MaxConcurrency == cfg.MaxConcurrency {
		st.c = old.c
	} else {
		st.c = newClient(cfg.Timeout.Std(), cfg.MaxConcurrency)
	}
	return st
}

// New returns Hooks for p.Config (which must be valid) and starts its
// event workers; Close stops them.
func New(p Params) *Hooks {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.TokenParam == "" {
		p.TokenParam = "token"
	}
	if p.QueueSize <= 0 {
		p.QueueSize = DefaultQueueSize
	}
	if p.Workers <= 0 {
		p.Workers = DefaultWorkers
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := newSetup(p.Config, p.Schemas, nil)
	h := &Hooks{
		log: p.Logger.With("component", "hooks"), tokenKey: p.TokenParam,
		clients: []*client{st.c},
		ctx:     ctx,
		cancel:  cancel,
		cache:   map[string]*answer{}, timers: map[string]*noneTimer{},
		finding: map[string]bool{}, proxies: map[string]bool{},
		dropLog: every{period: logEvery}, failLog: every{period: logEvery}, eventLog: every{period: logEvery},
	}
	h.cur.Store(st)
	for range p.Workers {
		q := make(chan func(context.Context), max(p.QueueSize/p.Workers, 1))
		h.queues = append(h.queues, q)
		h.wg.Add(1)
		go h.worker(q)
	}
	return h
}

// Attach gives the hooks the hub (for on_stream_none_reader) and the
// source manager (for on_stream_not_found); until then those hooks do
// nothing.
func (h *Hooks) Attach(s Streams, p Puller) {
	h.mu.Lock()
	h.streams, h.puller = s, p
	h.mu.Unlock()
}

// Close stops the workers and the timers, aborts the calls in flight and
// waits for them.
func (h *Hooks) Close() {
	h.mu.Lock()
	h.closed = true
	for name, t := range h.timers {
		t.t.Stop()
		delete(h.timers, name)
	}
	clients := h.clients
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
	for _, c := range clients {
		c.close()
	}
}

// Reconfigure puts cfg (valid) and schemas in effect, for a configuration
// reload: hook URLs, timeout, concurrency, cache TTL, failure policy,
// none_reader_delay and mediaServerId. Calls in flight finish on the
// settings they started with; cached admission answers are dropped when
// the hooks changed, so that the next viewer asks the new hook. Nothing
// is asked of the hub: viewers stay.
func (h *Hooks) Reconfigure(cfg config.HooksConfig, schemas []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.cur.Load()
	st := newSetup(cfg, schemas, old)
	if st.c != old.c {
		h.clients = append(h.clients, st.c)
	}
	h.cur.Store(st)
	if old.cfg != cfg {
		clear(h.cache)
	}
}

// Dropped returns how many events were dropped because the queue was full.
func (h *Hooks) Dropped() uint64 { return h.dropped.Load() }

func (h *Hooks) worker(q chan func(context.Context)) {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case job := <-q:
			job(h.ctx)
		}
	}
}

// enqueue hands job to the stream's worker without waiting; a full queue
// drops it.
func (h *Hooks) enqueue(what, stream string, job func(ctx context.Context)) {
	f := fnv.New32a()
	f.Write([]byte(stream))
	q := h.queues[int(f.Sum32()%uint32(len(h.queues)))]
	select {
	case q <- job:
		return
	case <-h.ctx.Done():
		return
	default:
	}
	n := h.dropped.Add(1)
	if h.dropLog.ok() {
		h.log.Warn("hook event queue full, events dropped", "event", what, "stream", stream, "dropped_total", n)
	}
}

// call posts body to url within the timeout.
func (h *Hooks) call(ctx context.Context, url string, body any) (Reply, error) {
	st := h.conf()
	ctx, cancel := context.WithTimeout(ctx, st.cfg.Timeout.Std())
	defer cancel()
	return st.c.post(ctx, url, body)
}

// splitName returns the app and stream of "app/stream".
func splitName(name string) (app, stream string) {
	app, stream, _ = strings.Cut(name, "/")
	return app, stream
}

// StreamPayload is the body of on_stream_changed (with Regist) and
// on_stream_none_reader. As ZLMediaKit does, on_stream_changed is posted
// once per schema the stream is served in (Params.Schemas: "rtmp", which
// covers RTMP and HTTP-FLV/WS-FLV, "rtsp", which covers RTSP and WebRTC,
// and "hls"), in that order, registering and unregistering alike;
// on_stream_none_reader names "rtmp", the schema every stream has.
// Protocol is how the stream came in (rtmp, pull, demo...).
type StreamPayload struct {
	MediaServerID string `json:"mediaServerId"`
	App           string `json:"app"`
	Stream        string `json:"stream"`
	Vhost         string `json:"vhost"`
	Schema        string `json:"schema"`
	Regist        *bool  `json:"regist,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
}

func (h *Hooks) streamPayload(name string) StreamPayload {
	app, stream := splitName(name)
	return StreamPayload{MediaServerID: h.conf().serverID, App: app, Stream: stream, Vhost: DefaultVhost, Schema: "rtmp"}
}

// Event takes the hub's events (hub.Params.Events). It never blocks.
func (h *Hooks) Event(ev hub.Event) {
	switch ev.Type {
	case hub.StreamStarted, hub.StreamEnded:
		regist := ev.Type == hub.StreamStarted
		if !regist {
			h.stopTimer(ev.Stream)
			h.forgetProxy(ev.Stream)
		}
		st := h.conf()
		url := st.cfg.OnStreamChanged
		if url == "" {
			return
		}
		bodies := make([]StreamPayload, len(st.schemas))
		for i, schema := range st.schemas {
			bodies[i] = h.streamPayload(ev.Stream)
			bodies[i].Schema, bodies[i].Regist, bodies[i].Protocol = schema, &regist, ev.Producer.Protocol
		}
		// One job: the schemas' calls are posted in order, and a stream's
		// unregistering ones after its registering ones.
		h.enqueue("on_stream_changed", ev.Stream, func(ctx context.Context) {
			for _, body := range bodies {
				if _, ok := h.event(ctx, "on_stream_changed", url, ev.Stream, body); !ok && ctx.Err() != nil {
					return
				}
			}
		})
	case hub.NoViewers:
		if h.conf().cfg.OnStreamNoneReader == "" {
			return
		}
		h.armTimer(ev.Stream)
	}
}

// event posts an event hook; a failure is logged (at most once per 10 s).
func (h *Hooks) event(ctx context.Context, hook, url, stream string, body any) (Reply, bool) {
	r, err := h.call(ctx, url, body)
	if err != nil {
		if ctx.Err() == nil && h.eventLog.ok() {
			h.log.Warn("event hook failed", "hook", hook, "stream", stream, "err", err)
		}
		return r, false
	}
	h.log.Debug("event hook called", "hook", hook, "stream", stream, "code", r.Code)
	return r, true
}

// noneTimer is a stream's pending on_stream_none_reader; its fields are
// guarded by Hooks.mu.
type noneTimer struct{ t *time.Timer }

// armTimer (re)starts name's none_reader_delay: it counts from the last
// viewer leaving.
func (h *Hooks) armTimer(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if old := h.timers[name]; old != nil {
		old.t.Stop()
	}
	nt := &noneTimer{}
	nt.t = time.AfterFunc(h.conf().cfg.NoneReaderDelay.Std(), func() { h.noneReaderDue(name, nt) })
	h.timers[name] = nt
}

func (h *Hooks) stopTimer(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if nt := h.timers[name]; nt != nil {
		nt.t.Stop()
		delete(h.timers, name)
	}
}

// noneReaderDue runs none_reader_delay after the last viewer left: if the
// stream is still there without viewers, on_stream_none_reader is told.
func (h *Hooks) noneReaderDue(name string, nt *noneTimer) {
	h.mu.Lock()
	current := h.timers[name] == nt
	if current {
		delete(h.timers, name)
	}
	s, closed := h.streams, h.closed
	h.mu.Unlock()
	if !current || closed || s == nil {
		return // stopped or re-armed meanwhile
	}
	in, ok := s.Stream(name)
	if !ok || viewers(in) > 0 {
		return
	}
	body := h.streamPayload(name)
	h.enqueue("on_stream_none_reader", name, func(ctx context.Context) {
		r, ok := h.event(ctx, "on_stream_none_reader", h.conf().cfg.OnStreamNoneReader, name, body)
		if !ok || r.Code != 0 || !r.Close {
			return
		}
		// Only if still nobody watches.
		if in, ok := s.Stream(name); ok && viewers(in) == 0 {
			h.log.Info("stream closed by on_stream_none_reader", "stream", name)
			s.CloseStream(name)
		}
	})
}

func viewers(in hub.StreamInfo) int {
	n := in.Waiting
	for _, v := range in.Viewers {
		n += v
	}
	return n
}

// redactQuery returns q encoded with the token's value hidden, for logs.
func redactQuery(q url.Values, tokenKey string) string {
	if q == nil {
		return ""
	}
	c := url.Values{}
	for k, v := range q {
		if k == tokenKey {
			v = []string{"REDACTED"}
		}
		c[k] = v
	}
	return c.Encode()
}

// clientAddr returns the client's IP and port from the request and the
// session's remote address.
func clientAddr(ip netip.Addr, remote string) (string, int) {
	port := 0
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		port = int(ap.Port())
		if !ip.IsValid() {
			ip = ap.Addr()
		}
	}
	if !ip.IsValid() {
		return "", port
	}
	return ip.Unmap().WithZone("").String(), port
}

var errClosed = errors.New("hooks closed")
