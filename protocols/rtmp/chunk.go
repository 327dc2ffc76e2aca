package rtmp

import "encoding/binary"

// Chunk stream IDs used for media sent to players.
const (
	csidData  = 5
	csidAudio = 4
	csidVideo = 6

	// chunkSize is what the server announces (Set Chunk Size) before play;
	// pre-chunked media uses it too.
	chunkSize = 65536

	// playStreamID is the message stream ID createStream hands out.
	playStreamID = 1
)

// appendMessage appends one media message for players, chunked with
// AppendChunks on the play stream. Every message is self-contained, so the
// same bytes can be written to any player from any message boundary.
func appendMessage(dst []byte, csid byte, typ byte, ts uint32, body []byte) []byte {
	return AppendChunks(dst, csid, typ, ts, playStreamID, body, chunkSize)
}

// AppendChunks appends one RTMP message split into chunks of chunkSize
// bytes: a type 0 header (absolute timestamp, length, type, message
// stream) on the first chunk and type 3 headers on the others, with the
// extended timestamp repeated on each chunk when it is used. csid must be
// in 2..63.
func AppendChunks(dst []byte, csid, typ byte, ts, streamID uint32, body []byte, chunkSize int) []byte {
	ext := ts >= 0xffffff
	hts := min(ts, 0xffffff)
	dst = append(dst, csid&0x3f,
		byte(hts>>16), byte(hts>>8), byte(hts),
		byte(len(body)>>16), byte(len(body)>>8), byte(len(body)),
		typ)
	dst = binary.LittleEndian.AppendUint32(dst, streamID)
	if ext {
		dst = binary.BigEndian.AppendUint32(dst, ts)
	}
	for first := true; first || len(body) > 0; first = false {
		if !first {
			dst = append(dst, 0xc0|csid&0x3f)
			if ext {
				dst = binary.BigEndian.AppendUint32(dst, ts)
			}
		}
		n := min(len(body), chunkSize)
		dst = append(dst, body[:n]...)
		body = body[n:]
	}
	return dst
}

// messageSize is an upper bound of appendMessage's output size.
func messageSize(body int) int {
	return 16 + body + (body/chunkSize+1)*5
}
