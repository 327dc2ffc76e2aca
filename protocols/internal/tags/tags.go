// Package tags encodes hub units and track headers as FLV tag bodies, which
// are also RTMP audio, video and data message bodies. H.264 and AAC use the
// legacy FLV layout; H.265 and Opus use enhanced RTMP (FourCC headers).
package tags

import (
	"encoding/binary"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"github.com/liveedge/liveedge/hub"
)

// Message types, as in RTMP and FLV.
const (
	TypeAudio = 8
	TypeVideo = 9
	TypeData  = 18
)

const (
	flvCodecH264 = 7
	flvCodecAAC  = 10

	exHeader          = 0x80
	exSequenceStart   = 0
	exCodedFrames     = 1
	exFramesX         = 3
	audioExHeader     = 9 << 4
	frameTypeKey      = 1
	frameTypeInter    = 2
	aacHeaderByte     = flvCodecAAC<<4 | 3<<2 | 1<<1 | 1 // AAC, 44 kHz, 16 bit, stereo (fixed for AAC)
	avcPacketSequence = 0
	avcPacketNALU     = 1
)

var (
	fourCCHEVC = [4]byte{'h', 'v', 'c', '1'}
	fourCCOpus = [4]byte{'O', 'p', 'u', 's'}
)

// Ms converts a stream time to RTMP/FLV milliseconds.
func Ms(d time.Duration) uint32 { return uint32(d / time.Millisecond) }

// Video returns the tag body of a video unit.
func Video(u *hub.Unit) []byte {
	size := 0
	for _, n := range u.NALUs {
		size += 4 + len(n)
	}
	cts := int32((u.PTS - u.DTS) / time.Millisecond)
	ft := byte(frameTypeInter)
	if u.Key {
		ft = frameTypeKey
	}
	var b []byte
	if u.Tracks.Video.Codec == hub.CodecH265 {
		b = make([]byte, 0, 8+size)
		b = append(b, exHeader|ft<<4|exCodedFrames)
		b = append(b, fourCCHEVC[:]...)
		b = append(b, byte(cts>>16), byte(cts>>8), byte(cts))
	} else {
		b = make([]byte, 0, 5+size)
		b = append(b, ft<<4|flvCodecH264, avcPacketNALU, byte(cts>>16), byte(cts>>8), byte(cts))
	}
	for _, n := range u.NALUs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

// Audio returns the tag body of an audio unit.
func Audio(u *hub.Unit) []byte {
	if u.Tracks.Audio.Codec == hub.CodecOpus {
		b := make([]byte, 0, 5+len(u.Payload))
		b = append(b, audioExHeader|exCodedFrames)
		b = append(b, fourCCOpus[:]...)
		return append(b, u.Payload...)
	}
	b := make([]byte, 0, 2+len(u.Payload))
	b = append(b, aacHeaderByte, 1)
	return append(b, u.Payload...)
}

// Body returns the tag type and body of a unit.
func Body(u *hub.Unit) (typ byte, body []byte) {
	if u.Video {
		return TypeVideo, Video(u)
	}
	return TypeAudio, Audio(u)
}

// VideoHeader returns the sequence header of a video track.
func VideoHeader(t *hub.Track) []byte {
	if t.Codec == hub.CodecH265 {
		b := []byte{exHeader | frameTypeKey<<4 | exSequenceStart}
		b = append(b, fourCCHEVC[:]...)
		return append(b, hvcC(t)...)
	}
	b := []byte{frameTypeKey<<4 | flvCodecH264, avcPacketSequence, 0, 0, 0}
	return append(b, avcC(t.SPS, t.PPS)...)
}

// AudioHeader returns the sequence header of an audio track.
func AudioHeader(t *hub.Track) []byte {
	if t.Codec == hub.CodecOpus {
		b := []byte{audioExHeader | exSequenceStart}
		b = append(b, fourCCOpus[:]...)
		h, _ := opus.IDHeader{Version: 1, ChannelCount: uint8(t.Channels), PreSkip: 3840,
			InputSampleRate: 48000}.Marshal()
		return append(b, h...)
	}
	return append([]byte{aacHeaderByte, 0}, t.AudioConfig...)
}

// Metadata returns the onMetaData data body describing the tracks.
func Metadata(ts *hub.Tracks) []byte {
	arr := amf0.ECMAArray{}
	if v := ts.Video; v != nil {
		id := float64(flvCodecH264)
		if v.Codec == hub.CodecH265 {
			id = float64(binary.BigEndian.Uint32(fourCCHEVC[:]))
		}
		arr = append(arr,
			amf0.ObjectEntry{Key: "width", Value: float64(v.Width)},
			amf0.ObjectEntry{Key: "height", Value: float64(v.Height)},
			amf0.ObjectEntry{Key: "videocodecid", Value: id})
		if v.FPS > 0 {
			arr = append(arr, amf0.ObjectEntry{Key: "framerate", Value: v.FPS})
		}
	}
	if a := ts.Audio; a != nil {
		id := float64(flvCodecAAC)
		if a.Codec == hub.CodecOpus {
			id = float64(binary.BigEndian.Uint32(fourCCOpus[:]))
		}
		arr = append(arr,
			amf0.ObjectEntry{Key: "audiocodecid", Value: id},
			amf0.ObjectEntry{Key: "audiosamplerate", Value: float64(a.SampleRate)},
			amf0.ObjectEntry{Key: "audiochannels", Value: float64(a.Channels)},
			amf0.ObjectEntry{Key: "stereo", Value: a.Channels == 2})
	}
	arr = append(arr, amf0.ObjectEntry{Key: "encoder", Value: "liveedge"})
	b, err := amf0.Data{"onMetaData", arr}.Marshal()
	if err != nil {
		return nil
	}
	return b
}

// avcC builds an AVCDecoderConfigurationRecord.
func avcC(sps, pps []byte) []byte {
	b := make([]byte, 0, 11+len(sps)+len(pps))
	b = append(b, 1, sps[1], sps[2], sps[3], 0xff, 0xe1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}

// hvcC builds an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15).
func hvcC(t *hub.Track) []byte {
	var s h265.SPS
	_ = s.Unmarshal(t.SPS) // validated when the track was made
	ptl := s.ProfileTierLevel
	var compat uint32
	for i, f := range ptl.GeneralProfileCompatibilityFlag {
		if f {
			compat |= 1 << (31 - i)
		}
	}
	b := make([]byte, 0, 23+3*5+len(t.VPS)+len(t.SPS)+len(t.PPS))
	b = append(b, 1, ptl.GeneralProfileSpace<<6|ptl.GeneralTierFlag<<5|ptl.GeneralProfileIdc)
	b = binary.BigEndian.AppendUint32(b, compat)
	// general_constraint_indicator_flags: the 48 bits after the compatibility
	// flags in the SPS's profile_tier_level (bytes 8..13 of the NAL unit).
	if len(t.SPS) >= 14 {
		b = append(b, t.SPS[8:14]...)
	} else {
		b = append(b, 0, 0, 0, 0, 0, 0)
	}
	b = append(b, ptl.GeneralLevelIdc,
		0xf0, 0x00, // min_spatial_segmentation_idc
		0xfc,                            // parallelismType
		0xfc|byte(s.ChromaFormatIdc&3),  // chroma_format_idc
		0xf8|byte(s.BitDepthLumaMinus8), // bit_depth_luma_minus8
		0xf8|byte(s.BitDepthChromaMinus8),
		0, 0, // avgFrameRate
		1<<3|3, // numTemporalLayers=1, lengthSizeMinusOne=3
		3)      // numOfArrays
	for _, n := range []struct {
		typ  h265.NALUType
		nalu []byte
	}{{h265.NALUType_VPS_NUT, t.VPS}, {h265.NALUType_SPS_NUT, t.SPS}, {h265.NALUType_PPS_NUT, t.PPS}} {
		b = append(b, 0x80|byte(n.typ), 0, 1)
		b = binary.BigEndian.AppendUint16(b, uint16(len(n.nalu)))
		b = append(b, n.nalu...)
	}
	return b
}
