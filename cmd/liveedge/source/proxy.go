package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
)

// Errors of the run-time proxy API.
var (
	ErrProxyExists = errors.New("a proxy for this stream exists")
	ErrNoProxy     = errors.New("no proxy for this stream")
)

// Proxy is a pull added at run time (the admin API's addStreamProxy):
// one stream, its origins in order, static (pulled at once and kept) or
// on demand. The configuration's per-entry defaults apply to the rest.
type Proxy struct {
	Stream  string   `json:"stream"`
	Origins []string `json:"origins"`
	Mode    string   `json:"mode"`
}

// match returns the entry for name: a run-time proxy first, then the
// configuration's first matching entry.
func (m *Manager) match(name string) (*config.Stream, bool) {
	m.mu.Lock()
	e := m.proxies[name]
	m.mu.Unlock()
	if e != nil {
		return e, true
	}
	return m.config().MatchStream(name)
}

// AddProxy validates p and adds it; a static proxy starts pulling at once.
// Errors name the invalid field, or wrap ErrProxyExists.
func (m *Manager) AddProxy(p Proxy) error {
	if err := m.addProxy(p); err != nil {
		return err
	}
	m.saveProxies()
	return nil
}

func (m *Manager) addProxy(p Proxy) error {
	if p.Mode == "" {
		p.Mode = config.ModeStatic
	}
	if !hub.ValidName(p.Stream) {
		return fmt.Errorf("stream: %q is not an app/stream name", p.Stream)
	}
	if p.Mode != config.ModeStatic && p.Mode != config.ModeOnDemand {
		return fmt.Errorf("mode: %q (want %s or %s)", p.Mode, config.ModeStatic, config.ModeOnDemand)
	}
	cfg := m.config()
	e := cfg.NewStream(p.Stream, p.Mode, p.Origins...)
	if err := cfg.ValidateStream("proxy", &e); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("shutting down")
	}
	if m.proxies[p.Stream] != nil {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrProxyExists, p.Stream)
	}
	m.proxies[p.Stream] = &e
	// A pull of the configuration's entry gives way to the proxy.
	old := m.pulls[p.Stream]
	m.mu.Unlock()
	if old != nil {
		old.cancel()
	}
	m.log.Info("proxy added", "stream", p.Stream, "mode", p.Mode, "origins", len(p.Origins))
	if p.Mode == config.ModeStatic {
		m.startWhenFree(p.Stream, &e, old)
	}
	return nil
}

// startWhenFree starts name's pull of e once the pull old (if any) ended.
func (m *Manager) startWhenFree(name string, e *config.Stream, old *pull) {
	if old == nil {
		m.start(name, e)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		<-old.done
		m.start(name, e)
	}()
}

// RemoveProxy removes the proxy of stream and stops its pull.
func (m *Manager) RemoveProxy(stream string) error {
	m.mu.Lock()
	e := m.proxies[stream]
	if e == nil {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNoProxy, stream)
	}
	delete(m.proxies, stream)
	pl := m.pulls[stream]
	m.mu.Unlock()
	if pl != nil && pl.entry == e {
		pl.cancel()
	}
	m.log.Info("proxy removed", "stream", stream)
	m.saveProxies()
	return nil
}

// Proxies returns the proxies added at run time, sorted by stream.
func (m *Manager) Proxies() []Proxy {
	m.mu.Lock()
	out := make([]Proxy, 0, len(m.proxies))
	for name, e := range m.proxies {
		out = append(out, Proxy{Stream: name, Origins: append([]string(nil), e.Origins...), Mode: e.Mode})
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

// Pulls returns the counters of every running pull, by stream.
func (m *Manager) Pulls() map[string]Stats {
	m.mu.Lock()
	pls := make([]*pull, 0, len(m.pulls))
	for _, pl := range m.pulls {
		pls = append(pls, pl)
	}
	m.mu.Unlock()
	out := make(map[string]Stats, len(pls))
	for _, pl := range pls {
		pl.mu.Lock()
		out[pl.name] = pl.stats
		pl.mu.Unlock()
	}
	return out
}

// saveProxies writes the proxies to the state file (atomically: a
// temporary file renamed over it). A failure is logged: the proxies keep
// running, they are only not remembered.
func (m *Manager) saveProxies() {
	path := m.p.StateFile
	if path == "" {
		return
	}
	b, err := json.MarshalIndent(struct {
		Proxies []Proxy `json:"proxies"`
	}{m.Proxies()}, "", "  ")
	if err == nil {
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, append(b, '\n'), 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		m.log.Error("state file not written: run-time proxies will not survive a restart", "file", path, "err", err)
	}
}

// restoreProxies adds the proxies of the state file. A missing file is an
// empty state; an unreadable one, or an entry no longer valid, is logged
// and skipped.
func (m *Manager) restoreProxies() {
	path := m.p.StateFile
	if path == "" {
		return
	}
	b, err := os.ReadFile(filepath.Clean(path))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var st struct {
		Proxies []Proxy `json:"proxies"`
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		m.log.Error("state file not read: no run-time proxies restored", "file", path, "err", err)
		return
	}
	for _, p := range st.Proxies {
		if err := m.addProxy(p); err != nil {
			m.log.Error("state file: proxy skipped", "file", path, "stream", p.Stream, "err", err)
		}
	}
	m.log.Info("run-time proxies restored", "file", path, "count", len(st.Proxies))
}
