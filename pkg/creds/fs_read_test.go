package creds

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readSized reads what io.ReadAll(io.LimitReader(r, limit)) reads, whatever
// the size hint: right, stale (the file grew or shrank), or absent.
func TestReadSizedIsReadAllUpToTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 100
	for _, n := range []int{0, 1, 99, 100, 101, 5000} {
		data := strings.Repeat("x", n)
		want, err := io.ReadAll(io.LimitReader(strings.NewReader(data), limit))
		require.NoError(t, err)
		for _, hint := range []int64{int64(n), 0, -1, int64(n) / 2, int64(n) * 2, 1 << 40} {
			got, err := readSized(strings.NewReader(data), hint, limit)
			require.NoError(t, err)
			assert.Equal(t, want, got, "%d bytes, size hint %d", n, hint)
			if hint == int64(n) && n < limit {
				// One byte more than the file, to find its end: not the
				// 512 more bytes.Buffer would leave.
				assert.Equal(t, n+1, cap(got), "the buffer for a file of %d bytes", n)
			}
		}
	}
}

// readSized reads what io.ReadAll(io.LimitReader(r, limit)) reads from
// readers that return a byte at a time, half of what is asked, or the last
// data together with io.EOF, whatever the hint.
func TestReadSizedTakesShortReads(t *testing.T) {
	t.Parallel()
	const limit = 100
	readers := map[string]func(io.Reader) io.Reader{
		"one byte":   iotest.OneByteReader,
		"half":       iotest.HalfReader,
		"data + EOF": iotest.DataErrReader,
	}
	for name, wrap := range readers {
		for _, n := range []int{0, 1, 99, 100, 101, 300} {
			data := strings.Repeat("y", n)
			want, err := io.ReadAll(io.LimitReader(strings.NewReader(data), limit))
			require.NoError(t, err)
			for _, hint := range []int64{int64(n), 0, -7, int64(n) + 1, limit} {
				got, err := readSized(wrap(strings.NewReader(data)), hint, limit)
				require.NoError(t, err)
				assert.Equal(t, want, got, "%s: %d bytes, size hint %d", name, n, hint)
			}
		}
	}
}

func TestReadSizedNegativeLimitReadsNothing(t *testing.T) {
	t.Parallel()
	got, err := readSized(strings.NewReader("abc"), 3, -5)
	require.NoError(t, err)
	assert.Empty(t, got)
}

// errAfter returns its data, then err instead of io.EOF.
type errAfter struct {
	r   io.Reader
	err error
}

func (e errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, e.err
	}
	return n, err
}

func TestReadSizedReportsAReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	got, err := readSized(errAfter{bytes.NewReader([]byte("abc")), boom}, 3, 100)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, "abc", string(got))
}
