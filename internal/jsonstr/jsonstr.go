// Package jsonstr writes a JSON string exactly as encoding/json does,
// without its reflection: a helper process lives for one call, and there
// encoding/json's first use is most of the cost of writing an answer.
package jsonstr

import "encoding/json"

// Append appends s as json.Marshal and json.Encoder write a string: plain
// ASCII, as a token is, is copied; anything encoding/json would escape
// (quotes, backslashes, control characters, the HTML characters <, > and
// &, and everything outside ASCII) is left to encoding/json.
func Append(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; plain[c>>6]&(1<<(c&63)) == 0 {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plain has bit c&63 of word c>>6 set for each byte c that encoding/json
// writes as itself: printable ASCII but for ", &, <, > and \. A bit set,
// because the loop above runs over every byte of a token.
var plain = [4]uint64{
	0xffffffff << 32 &^ (1<<'"' | 1<<'&' | 1<<'<' | 1<<'>'),
	(1<<63 - 1) &^ (1 << ('\\' - 64)),
}
