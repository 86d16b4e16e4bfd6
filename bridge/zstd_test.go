package bridge

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestZstdCompressor: batches compressed from many goroutines at once each
// decode to their input, through no more encoders than allowed; a request
// that cannot carry zstd gets its batch as it is.
func TestZstdCompressor(t *testing.T) {
	const encoders, workers, rounds = 2, 8, 40
	c := newZstdCompressor(encoders)
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			var dst bytes.Buffer
			for r := range rounds {
				var src []byte
				for i := range 50 + r*7 {
					src = fmt.Appendf(src, `{"sensor":%d,"t":%d.%d,"seq":%d}`, w, 20+i%9, i*37%10, r*1000+i)
				}
				dst.Reset()
				out, codec := c.Compress(&dst, src)
				if codec != kgo.CodecZstd {
					errs <- fmt.Errorf("codec %v, want zstd", codec)
					return
				}
				if len(out) >= len(src) {
					errs <- fmt.Errorf("%d bytes compressed to %d", len(src), len(out))
					return
				}
				got, err := dec.DecodeAll(out, nil)
				if err != nil || !bytes.Equal(got, src) {
					errs <- fmt.Errorf("worker %d round %d: decoded %d bytes (%v), want %d", w, r, len(got), err, len(src))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if made := len(c.room); made < 1 || made > encoders {
		t.Fatalf("%d encoders made, want 1 to %d", made, encoders)
	}
	if idle := len(c.idle); idle != len(c.room) {
		t.Fatalf("%d of %d encoders back idle", idle, len(c.room))
	}

	src := []byte("a batch for a broker before Kafka 2.1")
	out, codec := c.Compress(new(bytes.Buffer), src, kgo.CompressDisableZstd)
	if codec != kgo.CodecNone || !bytes.Equal(out, src) {
		t.Fatalf("zstd disabled: codec %v, %q", codec, out)
	}
}
