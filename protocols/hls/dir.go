package hls

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// dirPrefix starts the name of every muxer directory under Params.Dir.
const dirPrefix = "liveedge-"

// muxerDir creates the directory of a new muxer of stream name, or returns
// "" (segments in memory) when there is no Dir or it cannot be used.
func (s *Server) muxerDir(name string) string {
	if s.p.Dir == "" {
		return ""
	}
	// Stream names are "app/stream" of [A-Za-z0-9_.-] (hub.ValidName):
	// no separator or ".." survives the replacement.
	d := filepath.Join(s.p.Dir, fmt.Sprintf("%s%s-%d", dirPrefix, strings.ReplaceAll(name, "/", "~"), s.dirSeq.Add(1)))
	if err := os.MkdirAll(d, 0o755); err != nil {
		s.log.Error("hls.dir not usable, keeping this muxer's segments in memory", "stream", name, "err", err)
		return ""
	}
	return d
}

// removeDir removes a muxer's directory once the muxer is closed.
func (s *Server) removeDir(d string) {
	if d == "" {
		return
	}
	if err := os.RemoveAll(d); err != nil {
		s.log.Warn("hls: muxer directory not removed", "dir", d, "err", err)
	}
}

// cleanDir removes the muxer directories an earlier run left behind.
func (s *Server) cleanDir() {
	if s.p.Dir == "" {
		return
	}
	ents, err := os.ReadDir(s.p.Dir)
	if err != nil {
		s.log.Warn("hls.dir unreadable", "dir", s.p.Dir, "err", err)
		return
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), dirPrefix) {
			s.removeDir(filepath.Join(s.p.Dir, e.Name()))
		}
	}
}
