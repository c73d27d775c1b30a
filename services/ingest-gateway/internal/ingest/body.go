package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// maxPooledBuffer keeps one outsized body from pinning its buffer in the pool.
const maxPooledBuffer = 8 << 20

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bufferPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		b.Reset()
		bufferPool.Put(b)
	}
}

// body is a request body read into pooled buffers; release them once the payload has been
// published (Publish returns only after nats.go has copied it out).
type body struct {
	data []byte
	bufs []*bytes.Buffer
}

func (b *body) release() {
	for _, buf := range b.bufs {
		putBuffer(buf)
	}
	b.bufs = nil
	b.data = nil
}

// readBody reads the whole body under the limit, gunzipping it if Content-Encoding says
// so; the limit holds for the decompressed bytes too, so a gzip bomb stops at max+1 bytes.
func readBody(w http.ResponseWriter, r *http.Request, maxBytes int64) (*body, *apierr.Error) {
	gzipped, aerr := contentEncoding(r.Header.Get("Content-Encoding"))
	if aerr != nil {
		return nil, aerr
	}
	if r.ContentLength > maxBytes {
		return nil, tooLarge(maxBytes)
	}
	b := &body{}
	raw := getBuffer()
	b.bufs = append(b.bufs, raw)
	if r.ContentLength > 0 {
		// Trust a declared length only so far: a client declaring 4 MiB and sending
		// nothing must not pin 4 MiB.
		raw.Grow(int(min(r.ContentLength, 64<<10)) + bytes.MinRead)
	}
	if _, err := raw.ReadFrom(http.MaxBytesReader(w, r.Body, maxBytes)); err != nil {
		b.release()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(maxBytes)
		}
		return nil, apierr.New(apierr.InvalidArgument, "the request body could not be read (truncated?)")
	}
	b.data = raw.Bytes()
	if gzipped && len(b.data) > 0 {
		zr, err := gzip.NewReader(bytes.NewReader(b.data))
		if err != nil {
			b.release()
			return nil, apierr.New(apierr.InvalidArgument, "the body is not valid gzip: %s", shorten(err.Error(), 100))
		}
		plain := getBuffer()
		b.bufs = append(b.bufs, plain)
		n, err := plain.ReadFrom(io.LimitReader(zr, maxBytes+1))
		switch {
		case err != nil:
			b.release()
			return nil, apierr.New(apierr.InvalidArgument, "the body is not valid gzip: %s", shorten(err.Error(), 100))
		case n > maxBytes:
			b.release()
			return nil, apierr.New(apierr.PayloadTooLarge, "the decompressed request body is over %d bytes", maxBytes)
		}
		b.data = plain.Bytes()
	}
	// No bytes are a valid, empty export in protobuf (OTLP answers it with success); JSON
	// bodies are held to hold a JSON text by jsonText.
	return b, nil
}

// jsonText refuses what is not a JSON text before a JSON decoder sees it: an empty body,
// and bytes that are not UTF-8, which JSON text must be (RFC 8259 §8.1) and proto3 strings
// too; decoders would otherwise pass them on (pdata) or replace them silently
// (encoding/json), so each JSON route would treat them its own way. Escapes of lone
// surrogates (\udc00) are JSON and decode to U+FFFD with either decoder.
func jsonText(data []byte) error {
	if len(data) == 0 {
		return errors.New("the request body is empty; a JSON body holds one JSON value")
	}
	if utf8.Valid(data) {
		return nil
	}
	at := 0
	for at < len(data) {
		r, n := utf8.DecodeRune(data[at:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		at += n
	}
	return fmt.Errorf("the body is not valid UTF-8 (byte %d), which JSON must be", at)
}

func tooLarge(maxBytes int64) *apierr.Error {
	return apierr.New(apierr.PayloadTooLarge, "the request body is over %d bytes", maxBytes)
}

// contentEncoding reports whether the body is gzipped; other encodings are refused.
func contentEncoding(v string) (gzipped bool, _ *apierr.Error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "identity":
		return false, nil
	case "gzip", "x-gzip":
		return true, nil
	default:
		return false, apierr.New(apierr.InvalidArgument, "unsupported Content-Encoding %q: send gzip or no encoding", shorten(v, 64))
	}
}

// otlpFormat reads the Content-Type of an OTLP/HTTP request; parameters such as charset
// are allowed.
func otlpFormat(v string) (format, *apierr.Error) {
	mt, _, err := mime.ParseMediaType(v)
	if err == nil {
		switch strings.ToLower(mt) {
		case contentTypeProto:
			return formatProto, nil
		case contentTypeJSON:
			return formatJSON, nil
		}
	}
	return 0, apierr.New(apierr.InvalidArgument, "unsupported Content-Type %q: send application/x-protobuf or application/json", shorten(v, 64))
}

// jsonContentType accepts application/json, or no Content-Type at all (curl users).
func jsonContentType(v string) *apierr.Error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(v); err == nil && strings.EqualFold(mt, contentTypeJSON) {
		return nil
	}
	return apierr.New(apierr.InvalidArgument, "unsupported Content-Type %q: send application/json", shorten(v, 64))
}
