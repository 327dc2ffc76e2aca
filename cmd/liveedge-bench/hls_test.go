package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// TestTSScanner writes a segment with mediacommon's MPEG-TS writer (video
// with bench SEIs, big and small frames, and audio) and reads it back with
// the bench's scanner.
func TestTSScanner(t *testing.T) {
	video := &mpegts.Track{Codec: &tscodecs.H264{}}
	audio := &mpegts.Track{Codec: &tscodecs.MPEG4Audio{Config: mpeg4audio.Config{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}}}
	var buf bytes.Buffer
	w := &mpegts.Writer{W: &buf, Tracks: []*mpegts.Track{audio, video}}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11}
	pps := []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
	type frame struct {
		idr bool
		pub int64
	}
	var want []frame
	for i := range 30 {
		idr := i%10 == 0
		pub := int64(1_700_000_000_000_000_000 + i*40_000_000)
		slice := bytes.Repeat([]byte{0x41, 0x9a}, 50+i*700) // up to ~40 KB: many packets
		slice[0] = 0x41
		au := [][]byte{appendSEI(nil, pub)}
		if idr {
			slice[0] = 0x65
			au = append([][]byte{sps, pps}, au...)
		}
		au = append(au, slice)
		if err := w.WriteH264(video, int64(i)*3600, int64(i)*3600, au); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteMPEG4Audio(audio, int64(i)*3600, [][]byte{{0x21, 0x10, 0x04}}); err != nil {
			t.Fatal(err)
		}
		want = append(want, frame{idr, pub})
	}
	var got []frame
	var s tsScanner
	for range 2 { // the scanner is reused across segments
		got = got[:0]
		err := s.scan(buf.Bytes(), func(au []byte) {
			idr, pub, ok := annexBInfo(au)
			if !ok {
				t.Errorf("frame %d: no SEI", len(got))
			}
			got = append(got, frame{idr, pub})
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d frames, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("frame %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	if err := s.scan(append([]byte{0x46}, make([]byte, 187)...), func([]byte) {}); err == nil {
		t.Fatal("no error on a packet without sync byte")
	}
}

func TestLLLocate(t *testing.T) {
	part := func(uri string, ind bool) *playlist.MediaPart {
		return &playlist.MediaPart{URI: uri, Independent: ind, Duration: 200 * time.Millisecond}
	}
	pl := &playlist.Media{
		MediaSequence: 10,
		Segments: []*playlist.MediaSegment{
			{Gap: true, URI: "gap.mp4"},
			{URI: "seg11.mp4"}, // parts no longer listed
			{URI: "seg12.mp4", Parts: []*playlist.MediaPart{part("p0", true), part("p1", false)}},
		},
		Parts: []*playlist.MediaPart{part("p2", true), part("p3", false)},
	}
	if msn, p := llStart(pl); msn != 13 || p != 0 {
		t.Fatalf("llStart = %d/%d, want 13/0", msn, p)
	}
	pl.Parts[0].Independent = false
	if msn, p := llStart(pl); msn != 12 || p != 0 {
		t.Fatalf("llStart = %d/%d, want 12/0", msn, p)
	}
	for _, tc := range []struct {
		msn, part   int
		uri         string
		nmsn, npart int
		ok          bool
	}{
		{9, 0, "", 0, 0, false},
		{10, 0, "", 11, 0, true},
		{11, 0, "seg11.mp4", 12, 0, true},
		{11, 3, "", 12, 0, true},
		{12, 1, "p1", 12, 2, true},
		{12, 2, "", 13, 0, true},
		{13, 1, "p3", 13, 2, true},
		{13, 2, "", 0, 0, false},
		{14, 0, "", 0, 0, false},
	} {
		uri, nm, np, ok := llLocate(pl, tc.msn, tc.part)
		if uri != tc.uri || nm != tc.nmsn || np != tc.npart || ok != tc.ok {
			t.Errorf("llLocate(%d, %d) = %q %d/%d %v, want %q %d/%d %v",
				tc.msn, tc.part, uri, nm, np, ok, tc.uri, tc.nmsn, tc.npart, tc.ok)
		}
	}
}

func TestParseKindRuns(t *testing.T) {
	all, per, err := parseKindRuns("rtmp=100@2M;hls=100@2M,500@2M")
	if err != nil || all != nil || len(per["rtmp"]) != 1 || len(per["hls"]) != 2 {
		t.Fatalf("parseKindRuns = %v %v %v", all, per, err)
	}
	if _, _, err := parseKindRuns("nope=1@1M"); err == nil {
		t.Fatal("unknown kind accepted")
	}
	o := &options{window: 10 * time.Second, probes: 10}
	ko, specs, err := kindPlan(o, "hls", viewerKinds["hls"], nil, nil, "100@2M,300@2M", map[string]bool{"window": true})
	if err != nil || len(specs) != 2 || specs[1].Viewers != 500 || ko.window != 10*time.Second || ko.probes != 5 {
		t.Fatalf("kindPlan(hls) = %+v %v %v", ko, specs, err)
	}
	ko, specs, err = kindPlan(o, "rtmp", viewerKinds["rtmp"], nil, nil, "100@2M,300@2M", nil)
	if err != nil || len(specs) != 2 || specs[1].Viewers != 300 || ko.probes != 10 {
		t.Fatalf("kindPlan(rtmp) = %+v %v %v", ko, specs, err)
	}
}
