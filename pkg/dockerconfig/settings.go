package dockerconfig

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// settings are what configure-docker saves to the helper's own config file,
// under the keys pkg/creds reads from it. An empty field is left as it is.
type settings struct {
	identity, identityToken, issuer string
	// registries are added to the file's registries (the helper's default
	// list when the file has none), so that the helper serves them.
	registries []string
}

func (s settings) empty() bool {
	return s.identity == "" && s.identityToken == "" && s.issuer == "" && len(s.registries) == 0
}

// settingChange is one key's change, for messages. Its values are an
// identity id, a path, a URL or registry hosts: no secret.
type settingChange struct {
	key           string
	before, after any // before is nil when the key was not set
}

// saveSettings writes s to the helper's config file at path (0600, folder
// 0700), keeping every other key, unless dryRun or nothing changes.
func saveSettings(path string, s settings, dryRun bool) (fileEdit, []settingChange, error) {
	var changes []settingChange
	fe, err := editFile(path, 0o600, false, dryRun, func(doc []byte) ([]byte, error) {
		var err error
		if doc, changes, err = setSettings(doc, s); err != nil {
			return nil, fmt.Errorf("the helper's config file %s %w; the file was not changed", quote(path), err)
		}
		return doc, nil
	})
	if err != nil {
		return fe, nil, err
	}
	return fe, changes, nil
}

// setSettings works out the change to the helper's config file doc (nil:
// none yet). It does no I/O.
func setSettings(doc []byte, s settings) ([]byte, []settingChange, error) {
	d, top, err := parseDocument(doc)
	if err != nil {
		return nil, nil, err
	}
	var changes []settingChange
	set := func(key string, value any) error {
		idx, n := top.lookupField(key)
		if n > 1 {
			return fmt.Errorf("has %d %s keys (JSON keys match in any case), and only the last counts; keep one", n, key)
		}
		var before any
		if idx >= 0 {
			m := top.members[idx]
			if err := json.Unmarshal(d[m.valStart:m.valEnd], &before); err != nil {
				return err // a bug: the document was checked
			}
			if reflect.DeepEqual(before, value) {
				return nil
			}
		}
		changes = append(changes, settingChange{key: key, before: before, after: value})
		d = setMember(d, top, idx, key, marshal(value), newFileLayout)
		_, top, err = parseDocument(d)
		return err
	}
	for _, kv := range []struct{ key, value string }{
		{"identity", s.identity},
		{"identity_token", s.identityToken},
		{"issuer", s.issuer},
	} {
		if kv.value == "" {
			continue
		}
		if err := set(kv.key, kv.value); err != nil {
			return nil, nil, err
		}
	}
	if len(s.registries) > 0 {
		list, err := fileRegistries(d, top)
		if err != nil {
			return nil, nil, err
		}
		patterns, err := creds.ParseRegistries(strings.Join(list, ","))
		if err != nil {
			return nil, nil, fmt.Errorf("registries: %w", err)
		}
		grown := append([]any(nil), anySlice(list)...)
		for _, r := range s.registries {
			if !creds.Serves(patterns, r) {
				grown = append(grown, r)
				patterns = append(patterns, r)
			}
		}
		if len(grown) > len(list) {
			if err := set("registries", grown); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(changes) == 0 {
		return doc, nil, nil
	}
	return d, changes, nil
}

// fileRegistries is the config file's registries list, or the helper's
// default list when it has none: setting the key replaces the default.
func fileRegistries(d []byte, top object) ([]string, error) {
	idx, _ := top.lookupField("registries")
	if idx < 0 {
		return strings.Split(creds.DefaultRegistry, ","), nil
	}
	m := top.members[idx]
	var list []string
	if err := json.Unmarshal(d[m.valStart:m.valEnd], &list); err != nil {
		return nil, fmt.Errorf("has a registries key that is not a list of strings; the helper cannot read it either: make it a list such as [%q]", "cgr.dev")
	}
	if len(list) == 0 {
		return strings.Split(creds.DefaultRegistry, ","), nil
	}
	return list, nil
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// describe shows a setting's value in a message.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "not set"
	case string:
		return logsafe.Quote(v, pathLimit)
	case []any:
		var parts []string
		for _, e := range v {
			parts = append(parts, describe(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return logsafe.Quote(string(marshal(v)), pathLimit)
}
