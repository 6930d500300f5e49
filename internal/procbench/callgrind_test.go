package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCallgrind(t *testing.T) {
	t.Parallel()
	out := "version: 1\ncmd: x\nevents: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nfn=(1) main\n1 2 3\n" +
		"summary: 1000 200 100 10 20 30 1 2 3\ntotals: 999 200 100 10 20 30 1 2 3\n"
	r, err := parseCallgrind(out)
	require.NoError(t, err)
	assert.Equal(t, instrResult{Ir: 1000, L1Miss: 60, LLMiss: 6, Est: 1000 + 600 + 600}, r)

	_, err = parseCallgrind("events: Ir\nsummary: 5 6\n")
	assert.Error(t, err, "a summary that does not match the events")
	_, err = parseCallgrind("events: Dr\nsummary: 5\n")
	assert.Error(t, err, "no instruction count")
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		assert.Equal(t, want, thousands(n))
	}
}
