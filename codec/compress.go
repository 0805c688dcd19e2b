package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// contentEncodingHeader names the record header that says how the value is
// compressed. Its key is matched case-insensitively.
const contentEncodingHeader = "content-encoding"

// Stream identifiers of the Snappy and S2 framing formats.
var (
	snappyMagic = []byte("\xff\x06\x00\x00sNaPpY")
	s2Magic     = []byte("\xff\x06\x00\x00S2sTwO")
)

// decompressor inflates record values. Its decoders and output buffer are
// created on first use and reused; the output is valid until the next call.
type decompressor struct {
	max  int
	buf  []byte
	src  bytes.Reader
	zstd *zstd.Decoder
	gzip *gzip.Reader
	s2   *s2.Reader
	lz4  *lz4.Reader
}

// decodeValue returns rec.Value decompressed according to its
// content-encoding header (the last one when there are several), or
// rec.Value itself when there is none or it says identity.
func (z *decompressor) decodeValue(rec *Record) ([]byte, *RowError) {
	var enc []byte
	found := false
	for i := range rec.Headers {
		if h := &rec.Headers[i]; strings.EqualFold(h.Key, contentEncodingHeader) {
			enc, found = h.Value, true
		}
	}
	if !found {
		return rec.Value, nil
	}
	out, err := z.decode(enc, rec.Value)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (z *decompressor) decode(enc, src []byte) ([]byte, *RowError) {
	name := b2s(enc)
	switch {
	case len(enc) == 0 || strings.EqualFold(name, "identity"):
		return src, nil
	case strings.EqualFold(name, "zstd"):
		return z.zstdDecode(src)
	case strings.EqualFold(name, "gzip"):
		return z.gzipDecode(src)
	case strings.EqualFold(name, "snappy"), strings.EqualFold(name, "s2"):
		return z.s2Decode(src, name)
	case strings.EqualFold(name, "lz4"):
		return z.lz4Decode(src)
	}
	return nil, &RowError{Path: contentEncodingHeader, Reason: ReasonBadCompression,
		Detail: fmt.Sprintf("unknown content-encoding %s; supported: zstd, gzip, snappy, s2, lz4, identity", quote(enc))}
}

func (z *decompressor) badFrame(name string, err error) *RowError {
	return &RowError{Path: contentEncodingHeader, Reason: ReasonBadCompression, Detail: fmt.Sprintf("cannot decompress %s value: %v", name, err)}
}

func (z *decompressor) oversized() *RowError {
	return &RowError{Path: contentEncodingHeader, Reason: ReasonOversized, Detail: fmt.Sprintf("decompressed value exceeds the limit of %d bytes", z.max)}
}

func (z *decompressor) zstdDecode(src []byte) ([]byte, *RowError) {
	if z.zstd == nil {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(z.max)),
		)
		if err != nil {
			return nil, z.badFrame("zstd", err)
		}
		z.zstd = d
	}
	out, err := z.zstd.DecodeAll(src, z.buf[:0])
	if cap(out) <= z.max+bytes.MinRead {
		z.buf = out[:0]
	}
	switch {
	case err == nil:
		if len(out) > z.max {
			return nil, z.oversized()
		}
		return out, nil
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return nil, z.oversized()
	}
	return nil, z.badFrame("zstd", err)
}

func (z *decompressor) gzipDecode(src []byte) ([]byte, *RowError) {
	z.src.Reset(src)
	var err error
	if z.gzip == nil {
		z.gzip, err = gzip.NewReader(&z.src)
	} else {
		err = z.gzip.Reset(&z.src)
	}
	if err != nil {
		return nil, z.badFrame("gzip", err)
	}
	return z.readAll(z.gzip, "gzip")
}

func (z *decompressor) s2Decode(src []byte, name string) ([]byte, *RowError) {
	if bytes.HasPrefix(src, snappyMagic) || bytes.HasPrefix(src, s2Magic) {
		z.src.Reset(src)
		if z.s2 == nil {
			z.s2 = s2.NewReader(&z.src)
		} else {
			z.s2.Reset(&z.src)
		}
		return z.readAll(z.s2, name)
	}
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, z.badFrame(name, err)
	}
	if n > z.max {
		return nil, z.oversized()
	}
	if cap(z.buf) < n {
		z.buf = make([]byte, 0, n)
	}
	out, err := s2.Decode(z.buf[:n], src)
	if err != nil {
		return nil, z.badFrame(name, err)
	}
	return out, nil
}

func (z *decompressor) lz4Decode(src []byte) ([]byte, *RowError) {
	z.src.Reset(src)
	if z.lz4 == nil {
		z.lz4 = lz4.NewReader(&z.src)
	} else {
		z.lz4.Reset(&z.src)
	}
	return z.readAll(z.lz4, "lz4")
}

// readAll reads r into z.buf, failing as soon as the output passes z.max:
// at most z.max+1 bytes are ever inflated.
func (z *decompressor) readAll(r io.Reader, name string) ([]byte, *RowError) {
	buf := z.buf[:0]
	defer func() { z.buf = buf[:0] }()
	for {
		if len(buf) == cap(buf) {
			if len(buf) > z.max {
				return nil, z.oversized()
			}
			grow := max(cap(buf), 4096)
			grow = min(grow, z.max+1-len(buf))
			buf = append(buf, make([]byte, grow)...)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > z.max {
			return nil, z.oversized()
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, z.badFrame(name, err)
		}
	}
}
