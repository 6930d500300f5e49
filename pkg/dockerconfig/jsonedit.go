package dockerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The edits below splice text into the document instead of decoding and
// re-encoding it: every byte outside what is added or replaced stays as it
// was, so unknown keys, their order, number formats and the user's layout
// all survive. (docker's own writer re-encodes, dropping order and layout.)

// object is one JSON object in a document: its span and its members in
// document order.
type object struct {
	start, end int // doc[start] is '{', doc[end-1] is '}'
	members    []member
}

// member is one key and its value; offsets index the whole document.
type member struct {
	key              string // decoded
	sepAfter         int    // where the white space before the key starts, after any comma
	keyStart, keyEnd int
	valStart, valEnd int
}

// parseObject reads the object that starts at doc[start]. The document
// must already be known to be valid JSON.
func parseObject(doc []byte, start int) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(doc[start:]))
	at := func() int { return start + int(dec.InputOffset()) }
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return object{}, errors.New("is not a JSON object")
	}
	o := object{start: start}
	prev := start + 1 // after '{', then after each value (More skips white space, so not at())
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return object{}, err
		}
		key, _ := t.(string)
		m := member{key: key, keyStart: skipSpace(doc, prev, true), keyEnd: at()}
		m.sepAfter = afterComma(doc, prev, m.keyStart)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return object{}, err
		}
		m.valEnd = at()
		m.valStart = m.valEnd - len(raw)
		if m.valStart < m.keyEnd || !bytes.Equal(doc[m.valStart:m.valEnd], raw) {
			return object{}, errors.New("cannot locate a value in the document") // a bug, not bad input
		}
		o.members = append(o.members, m)
		prev = m.valEnd
	}
	if _, err := dec.Token(); err != nil {
		return object{}, err
	}
	o.end = at()
	return o, nil
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space (or a comma, with commas).
func skipSpace(doc []byte, i int, commas bool) int {
	for i < len(doc) && (isSpace(doc[i]) || commas && doc[i] == ',') {
		i++
	}
	return i
}

// afterComma returns where the white space just before a key starts: after
// the comma that separates it from the previous member, if there is one.
func afterComma(doc []byte, from, to int) int {
	if i := bytes.IndexByte(doc[from:to], ','); i >= 0 {
		return from + i + 1
	}
	return from
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// lookupField finds the member encoding/json would decode into a struct
// field named name (docker and this helper both decode their config files
// with it): keys match case-insensitively. It returns the member's index
// (the last match, the one that wins) and how many members match.
func (o object) lookupField(name string) (idx, n int) {
	idx = -1
	for i, m := range o.members {
		if strings.EqualFold(m.key, name) {
			idx, n = i, n+1
		}
	}
	return idx, n
}

// lookupKey finds a map key as encoding/json decodes it into a map: exactly,
// the last occurrence winning. It returns -1 if key is absent.
func (o object) lookupKey(key string) int {
	idx := -1
	for i, m := range o.members {
		if m.key == key {
			idx = i
		}
	}
	return idx
}

// layout is how a member added to an empty object is laid out: lead is the
// white space before it, close the white space before the '}'.
type layout struct{ lead, colon, close string }

// newFileLayout is docker's own: one tab per level, as json.MarshalIndent
// with "\t" writes it.
var newFileLayout = layout{lead: "\n\t", colon: ": ", close: "\n"}

// nestedLayout is the layout for an object that is the value of top-level
// member m of top, following the layout top already has: compact stays
// compact, indented gets one more level.
func nestedLayout(doc []byte, top object, m member) layout {
	outer := top.memberLayout(doc)
	if !strings.Contains(outer.lead, "\n") {
		return layout{colon: outer.colon}
	}
	indent := outer.lead[strings.LastIndexByte(outer.lead, '\n')+1:]
	unit := indent
	if unit == "" {
		unit = "\t"
	}
	if lineStart := bytes.LastIndexByte(doc[:m.keyStart], '\n') + 1; len(bytes.TrimSpace(doc[lineStart:m.keyStart])) == 0 {
		indent = string(doc[lineStart:m.keyStart])
	}
	return layout{lead: "\n" + indent + unit, colon: outer.colon, close: "\n" + indent}
}

// memberLayout is the layout of o's last member, which an added member
// copies; for an empty object it is newFileLayout.
func (o object) memberLayout(doc []byte) layout {
	if len(o.members) == 0 {
		return newFileLayout
	}
	last := o.members[len(o.members)-1]
	return layout{lead: string(doc[last.sepAfter:last.keyStart]), colon: string(doc[last.keyEnd:last.valStart])}
}

// setMember returns doc with o's member key set to the JSON value val:
// replaced in place if key is at index idx (from a lookup; -1 if absent),
// else added after the last member, laid out like it, or as empty says in
// an empty object.
func setMember(doc []byte, o object, idx int, key string, val []byte, empty layout) []byte {
	if idx >= 0 {
		m := o.members[idx]
		return splice(doc, m.valStart, m.valEnd, val)
	}
	k, _ := json.Marshal(key) // a string always marshals
	if len(o.members) == 0 {
		text := "{" + empty.lead + string(k) + empty.colon + string(val) + empty.close + "}"
		return splice(doc, o.start, o.end, []byte(text))
	}
	l := o.memberLayout(doc)
	last := o.members[len(o.members)-1]
	return splice(doc, last.valEnd, last.valEnd, []byte(","+l.lead+string(k)+l.colon+string(val)))
}

// splice returns a new document with doc[from:to] replaced by text.
func splice(doc []byte, from, to int, text []byte) []byte {
	out := make([]byte, 0, len(doc)-(to-from)+len(text))
	out = append(out, doc[:from]...)
	out = append(out, text...)
	return append(out, doc[to:]...)
}

// marshal encodes v as JSON without HTML escaping: "<" in a value stays "<".
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings and string slices always encode
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// parseDocument checks that doc is one JSON object and returns it. An empty
// or all-white-space document is an empty object, as docker reads it. The
// error says where the JSON breaks, as line and column, without quoting
// the document: it may hold credentials.
func parseDocument(doc []byte) ([]byte, object, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		doc = []byte("{}\n")
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, object{}, syntaxProblem(doc, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, object{}, errors.New("is not a JSON object")
	}
	top, err := parseObject(doc, skipSpace(doc, 0, false))
	return doc, top, err
}

// syntaxProblem describes a JSON syntax error by its place in doc.
func syntaxProblem(doc []byte, err error) error {
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return fmt.Errorf("is not valid JSON: %w", err)
	}
	off := min(max(int(syn.Offset)-1, 0), len(doc))
	line := bytes.Count(doc[:off], []byte("\n")) + 1
	col := off - (bytes.LastIndexByte(doc[:off], '\n') + 1) + 1
	// Not syn.Error(): it names the offending character, which may be a
	// byte of a stored credential.
	return fmt.Errorf("is not valid JSON, so docker cannot read it either: syntax error at line %d, column %d (byte %d)", line, col, syn.Offset)
}
