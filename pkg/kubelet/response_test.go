package kubelet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireSameAsMarshal fails unless appendResponse writes what
// json.Marshal writes for resp, and the newline Serve always wrote.
func requireSameAsMarshal(t *testing.T, resp Response) {
	t.Helper()
	want, err := json.Marshal(resp)
	require.NoError(t, err)
	assert.Equal(t, string(want)+"\n", string(appendResponse(nil, resp)))
}

func TestAppendResponseIsJSONMarshal(t *testing.T) {
	t.Parallel()
	tok := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzIn0.c2ln"
	for name, resp := range map[string]Response{
		"answered": {APIVersion: APIVersion, Kind: "CredentialProviderResponse", CacheKeyType: "Registry",
			CacheDuration: &Duration{55 * time.Minute}, Auth: map[string]AuthConfig{"cgr.dev": {Username: "_token", Password: tok}}},
		"not served":        {APIVersion: APIVersionV1Beta1, Kind: "CredentialProviderResponse", CacheKeyType: "Registry", Auth: map[string]AuthConfig{}},
		"nil auth":          {APIVersion: APIVersion},
		"zero":              {},
		"sorted hosts":      {Auth: map[string]AuthConfig{"z.example": {}, "a.example:5000": {Username: "u"}, "m": {Password: "p"}}},
		"escapes":           {APIVersion: "<&>\"\\\n\u2028\xff", Auth: map[string]AuthConfig{"h\x00st": {Username: "ü", Password: "\t"}}},
		"microseconds":      {CacheDuration: &Duration{1500 * time.Nanosecond}},
		"negative, zero":    {CacheDuration: &Duration{-time.Second}, Auth: map[string]AuthConfig{"": {}}},
		"zero duration set": {CacheDuration: &Duration{}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			requireSameAsMarshal(t, resp)
		})
	}
}

// FuzzAppendResponseIsJSONMarshal: any response, with up to two hosts.
func FuzzAppendResponseIsJSONMarshal(f *testing.F) {
	f.Add(APIVersion, "CredentialProviderResponse", "Registry", true, int64(55*time.Minute), uint8(1), "cgr.dev", "_token", "eyJ.e30.c2ln", "b.example", "u", "p")
	f.Add("<", "&", ">", false, int64(0), uint8(2), "\u2028", "\xff", "\"", "\\", "\n", "µ")
	f.Add("", "", "", true, int64(-1), uint8(0), "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, apiVersion, kind, keyType string, withDuration bool, ns int64, hosts uint8, host1, user1, pass1, host2, user2, pass2 string) {
		resp := Response{APIVersion: apiVersion, Kind: kind, CacheKeyType: keyType}
		if withDuration {
			resp.CacheDuration = &Duration{time.Duration(ns)}
		}
		switch hosts % 4 {
		case 1:
			resp.Auth = map[string]AuthConfig{}
		case 2:
			resp.Auth = map[string]AuthConfig{host1: {user1, pass1}}
		case 3:
			resp.Auth = map[string]AuthConfig{host1: {user1, pass1}, host2: {user2, pass2}}
		}
		requireSameAsMarshal(t, resp)
	})
}
