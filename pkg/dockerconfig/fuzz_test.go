package dockerconfig

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzAddHelpers fuzzes the docker config that addHelpers edits. Whenever
// it accepts a document:
//
//   - the result decodes, as docker decodes it, to the same keys and values
//     except credHelpers, which gains our entry and loses nothing else;
//   - the bytes before the first change are the input's, and so are the
//     bytes after the last: the edit is one splice (or two: the entry and
//     an emptied credHelpers);
//   - a second run changes nothing.
//
// A document it refuses is one encoding/json also refuses, or one whose
// credHelpers docker could not use.
func FuzzAddHelpers(f *testing.F) {
	for _, s := range []string{
		lived, "", "{}", " \n", `{"credHelpers":null}`, `{"credHelpers":{}}`,
		`{"CredHelpers":{"gcr.io":"gcloud"},"x":[1,{"y":{}}]}`,
		`{"credHelpers":{"cgr.dev":"cgr"}}`, `{"credHelpers":{"cgr.dev":"x"}}`,
		"{\n  \"a\" : 1e3 ,\n  \"b\" : \"\\u00e9\"\n}\n", `{"a":1,}`, `[]`, `{} {}`,
		"{\r\n\t\"auths\": {\"cgr.dev\": {}}\r\n}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		e, out, err := addHelpers(doc, []string{"cgr.dev"}, false)
		var before map[string]any
		decodeErr := json.Unmarshal(doc, &before)
		if len(bytes.TrimSpace(doc)) == 0 {
			before, decodeErr = map[string]any{}, nil
		}
		if err != nil {
			if decodeErr == nil {
				// Accepted by encoding/json: only a credHelpers docker
				// cannot use, or another helper's entry, is refused.
				msg := err.Error()
				assert.True(t, strings.Contains(msg, "credHelpers"), "refused a document docker reads: %v", err)
			}
			return
		}
		require.NoError(t, decodeErr, "accepted what encoding/json refuses")

		var after map[string]any
		require.NoError(t, json.Unmarshal(out, &after), "the edit broke the document")
		helpers := func(m map[string]any) (map[string]any, string) {
			for k, v := range m {
				if strings.EqualFold(k, "credHelpers") {
					delete(m, k)
					h, _ := v.(map[string]any)
					return h, k
				}
			}
			return nil, ""
		}
		hb, _ := helpers(before)
		ha, _ := helpers(after)
		assert.Equal(t, before, after, "a key other than credHelpers changed")
		require.NotNil(t, ha)
		assert.Equal(t, "cgr", ha["cgr.dev"])
		for k, v := range hb {
			assert.Equal(t, v, ha[k], "credHelpers lost or changed %q", k)
		}
		assert.Len(t, ha, len(hb)+len(e.Added))

		if len(bytes.TrimSpace(doc)) > 0 {
			p := 0
			for p < len(doc) && p < len(out) && doc[p] == out[p] {
				p++
			}
			s := 0
			for s < len(doc)-p && s < len(out)-p && doc[len(doc)-1-s] == out[len(out)-1-s] {
				s++
			}
			// What changed in the input is at most the credHelpers value
			// and what separates it from its neighbour.
			changed := string(doc[p : len(doc)-s])
			assert.Empty(t, strings.Trim(changed, " \t\r\n,{}nul"), "bytes outside credHelpers changed: %q", changed)
		}

		e2, out2, err := addHelpers(out, []string{"cgr.dev"}, false)
		require.NoError(t, err)
		assert.False(t, e2.Changed())
		assert.Equal(t, out, out2)
	})
}

// FuzzSetSettings fuzzes the helper's config file: other keys keep their
// values, the settings are set, and a second run changes nothing.
func FuzzSetSettings(f *testing.F) {
	for _, s := range []string{"", "{}", `{"identity":"a","audience":"x"}`, `{"registries":["cgr.dev"]}`, `{"Identity":1}`, `{"registries":"x"}`} {
		f.Add([]byte(s))
	}
	s := settings{identity: "id/1", issuer: "https://issuer.example.com", registries: []string{"registry.example.com"}}
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, _, err := setSettings(doc, s)
		if err != nil {
			return
		}
		var before, after map[string]any
		if len(bytes.TrimSpace(doc)) > 0 {
			require.NoError(t, json.Unmarshal(doc, &before))
		}
		require.NoError(t, json.Unmarshal(out, &after))
		for k, v := range before {
			switch strings.ToLower(k) {
			case "identity", "issuer", "registries":
			default:
				assert.Equal(t, v, after[k], "%q changed", k)
			}
		}
		out2, changes, err := setSettings(out, s)
		require.NoError(t, err)
		assert.Empty(t, changes)
		assert.Equal(t, out, out2)
	})
}
