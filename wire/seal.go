package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"
	"runtime"
	"sync"
	"unsafe"
)

// SignatureSize is the length of the signature that starts a message's
// first frame: an HMAC-SHA256 of the envelope that follows it.
const SignatureSize = sha256.Size

// DigestSize is the length of a buffer digest.
const DigestSize = sha256.Size

// digestChunk is the piece size of the buffer digest (see Digest).
const digestChunk = 1 << 20

// Digest returns the digest of a buffer, as listed in the envelope:
// SHA-256 over the concatenated SHA-256 hashes of its consecutive 1 MiB
// pieces (the last one shorter; an empty buffer has no pieces). Hashing
// pieces lets large buffers be digested on all cores.
func Digest(buf []byte) [DigestSize]byte {
	pieces := (len(buf) + digestChunk - 1) / digestChunk
	sums := make([]byte, pieces*DigestSize)
	workers := min(runtime.GOMAXPROCS(0), pieces/8)
	if workers <= 1 {
		for i := range pieces {
			s := sha256.Sum256(buf[i*digestChunk : min(len(buf), (i+1)*digestChunk)])
			copy(sums[i*DigestSize:], s[:])
		}
		return sha256.Sum256(sums)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < pieces; i += workers {
				s := sha256.Sum256(buf[i*digestChunk : min(len(buf), (i+1)*digestChunk)])
				copy(sums[i*DigestSize:], s[:])
			}
		})
	}
	wg.Wait()
	return sha256.Sum256(sums)
}

// Signer signs and checks messages with one HMAC-SHA256 key. A Signer is
// not safe for concurrent use: give each goroutine its own.
type Signer struct {
	mac hash.Hash
	sum []byte
}

// NewSigner returns a Signer for key, which must not be empty.
func NewSigner(key []byte) *Signer {
	if len(key) == 0 {
		panic("wire: empty HMAC key")
	}
	return &Signer{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, SignatureSize)}
}

// sign returns the HMAC of env in s's scratch space.
func (s *Signer) sign(env []byte) []byte {
	s.mac.Reset()
	s.mac.Write(env)
	s.sum = s.mac.Sum(s.sum[:0])
	return s.sum
}

// signHead writes into the first SignatureSize bytes of head the HMAC of
// the envelope that follows them, and returns head.
func (s *Signer) signHead(head []byte) []byte {
	copy(head, s.sign(head[SignatureSize:]))
	return head
}

// ChunkSize is the largest frame Seal makes of a buffer: a larger buffer
// travels as consecutive frames of this size (the last shorter). Small
// frames let the sender's encryption and the receiver's decryption
// overlap; one CURVE frame of 100 MB moves at well under half the speed.
const ChunkSize = 64 << 10

// Seal encodes m as frames: the signature followed by the envelope, then
// the buffers. Buffers totalling at most InlineSize bytes are copied into
// the envelope; larger ones follow it, not copied, each split into frames
// of at most ChunkSize bytes. The signature is the HMAC of the envelope,
// which holds the buffers or lists a digest of each (and how many frames
// it spans), so it covers the buffers too.
func (s *Signer) Seal(m *Message) [][]byte { return s.seal(nil, m, ChunkSize, InlineSize) }

// SealInto is Seal writing the first frame into buf's storage when it has
// room, else into a new buffer. A sender whose transport copies what it
// sends (every transport.Socket does) seals all its messages into one
// buffer: the frames are good until buf is used again.
func (s *Signer) SealInto(buf []byte, m *Message) [][]byte {
	return s.seal(buf, m, ChunkSize, InlineSize)
}

func (s *Signer) seal(buf []byte, m *Message, chunk, inline int) [][]byte {
	head, frames := encode(buf, m, chunk, inline, SignatureSize)
	return append([][]byte{s.signHead(head)}, frames...)
}

// openEnvelope checks the signature and decodes the envelope, and checks
// that the frames after it are as many as it announces.
func (s *Signer) openEnvelope(frames [][]byte) (*Message, layout, error) {
	if len(frames) == 0 {
		return nil, layout{}, fmt.Errorf("%w: no frames", ErrMalformed)
	}
	if len(frames[0]) == SignatureSize && len(frames) > 1 {
		return nil, layout{}, fmt.Errorf("%w: the signature is a frame of its own, as in protocol version 1 (this side speaks %d)", ErrVersion, Version)
	}
	if len(frames[0]) <= SignatureSize {
		return nil, layout{}, fmt.Errorf("%w: first frame has %d bytes, want a %d-byte signature followed by the envelope", ErrMalformed, len(frames[0]), SignatureSize)
	}
	sig, env := frames[0][:SignatureSize], frames[0][SignatureSize:]
	if subtle.ConstantTimeCompare(sig, s.sign(env)) != 1 {
		return nil, layout{}, fmt.Errorf("%w: HMAC does not match the envelope", ErrSignature)
	}
	m := new(Message)
	lay, err := decodeEnvelope(env, m)
	if err != nil {
		return nil, layout{}, err
	}
	if m.Type == Batch {
		return m, lay, nil // the frames are counted message by message
	}
	if n := len(frames) - 1; n != lay.frames() {
		return nil, layout{}, fmt.Errorf("%w: %d buffer frames, envelope announces %d", ErrMalformed, n, lay.frames())
	}
	return m, lay, nil
}

// Open checks the signature of frames, decodes them, and joins each
// buffer's frames. With checkBuffers, every buffer is checked against its
// digest; otherwise the caller may do it later with CheckBuffers (an
// engine does, off its I/O goroutine). Content and single-frame buffers
// alias frames.
func (s *Signer) Open(frames [][]byte, checkBuffers bool) (*Message, error) {
	m, lay, err := s.openEnvelope(frames)
	if err != nil {
		return nil, err
	}
	if m.Type == Batch {
		return nil, fmt.Errorf("%w: a batch where one message was expected (use OpenAll)", ErrMalformed)
	}
	m.setBuffers(frames[1:], lay)
	if checkBuffers {
		if err := m.CheckBuffers(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// setBuffers gives m its buffers as lay says they lie: in the envelope or
// in frames.
func (m *Message) setBuffers(frames [][]byte, lay layout) {
	switch {
	case lay.inline != nil:
		m.Buffers, m.inline = lay.inline, true
	case len(lay.digests) > 0:
		m.digests = lay.digests
		m.Buffers = joinBuffers(frames, lay)
	}
}

// joinBuffers makes each buffer of its frames, copying only buffers that
// span several frames.
func joinBuffers(frames [][]byte, lay layout) [][]byte {
	if lay.counts == nil {
		return frames
	}
	bufs := make([][]byte, len(lay.counts))
	for i, n := range lay.counts {
		switch {
		case n == 1:
			bufs[i] = frames[0]
		case contiguous(frames[:n]):
			bufs[i] = frames[0][:spanLen(frames[:n])]
		default:
			size := spanLen(frames[:n])
			b := bytesOf(make([]uint64, (size+7)/8))[:0] // 8-byte aligned, for array views
			for _, f := range frames[:n] {
				b = append(b, f...)
			}
			bufs[i] = b
		}
		frames = frames[n:]
	}
	return bufs
}

func spanLen(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// contiguous reports whether frames lie end to end within the capacity of
// the first, so that reslicing it joins them: transports that receive a
// message into one buffer (zmqnet) make them so.
func contiguous(frames [][]byte) bool {
	span := spanLen(frames)
	if cap(frames[0]) < span {
		return false
	}
	next := uintptr(unsafe.Pointer(unsafe.SliceData(frames[0])))
	for _, f := range frames {
		if len(f) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(f))) != next {
			return false
		}
		next += uintptr(len(f))
	}
	return true
}

// CheckBuffers checks each buffer of a message returned by Open against
// the digest its signed envelope lists. Buffers that came inside the
// envelope were checked with its signature.
func (m *Message) CheckBuffers() error {
	if m.inline {
		return nil
	}
	if len(m.Buffers) != len(m.digests) {
		return fmt.Errorf("%w: %d buffers, envelope lists %d", ErrMalformed, len(m.Buffers), len(m.digests))
	}
	for i, b := range m.Buffers {
		d := Digest(b)
		if subtle.ConstantTimeCompare(d[:], m.digests[i]) != 1 {
			return fmt.Errorf("%w: buffer %d does not match its digest", ErrSignature, i)
		}
	}
	return nil
}

// PeekHeader decodes the envelope of frames WITHOUT checking the
// signature. It is only for addressing an error reply to a message that
// was refused, so it is lenient: when the envelope does not decode (an
// unknown type or version, say), it still returns the message id if it can
// find one, with the decoding error. Nothing it returns may be trusted.
func PeekHeader(frames [][]byte) (Header, error) {
	if len(frames) == 0 || len(frames[0]) <= SignatureSize {
		return Header{}, fmt.Errorf("%w: no envelope", ErrMalformed)
	}
	env := frames[0][SignatureSize:]
	m := new(Message)
	_, err := decodeEnvelope(env, m)
	if err != nil && m.ID == "" {
		m.ID = findID(env)
	}
	return m.Header, err
}

// findID looks for a string under the key "id" in a MessagePack map.
func findID(env []byte) string {
	n, b, err := readMapHeader(env)
	if err != nil {
		return ""
	}
	for range n {
		var key []byte
		if key, b, err = readStrBytes(b); err != nil {
			return ""
		}
		if string(key) == keyID {
			id, _, err := readStr(b)
			if err != nil {
				return ""
			}
			return id
		}
		if b, err = skip(b); err != nil {
			return ""
		}
	}
	return ""
}
