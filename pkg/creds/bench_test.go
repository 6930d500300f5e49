package creds

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkGetCached is the in-process cost of a cached get: read the
// ambient token, check it, read and check the cache entry. The whole-process
// cost, which is what docker pays, is measured by internal/procbench.
func BenchmarkGetCached(b *testing.B) {
	f := newFixture(b)
	h, err := New(f.cfg)
	require.NoError(b, err)
	_, _, err = h.Get(f.host)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := h.Get(f.host); err != nil {
			b.Fatal(err)
		}
	}
	if n := f.sb.STS.Exchanges(); n != 1 {
		b.Fatalf("%d exchanges; the cache was not hit", n)
	}
}
